"""REST API endpoints: the routes the OpenAPI schema documents (urls.py adds the schema)."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("conversations/", views.ConversationListView.as_view(), name="conversation-list"),
    path(
        "conversations/<int:pk>/",
        views.ConversationDetailView.as_view(),
        name="conversation-detail",
    ),
    path("conversations/<int:pk>/messages/", views.MessageListView.as_view(), name="message-list"),
    path("conversations/<int:pk>/read", views.ReadView.as_view(), name="conversation-read"),
    path("conversations/<int:pk>/assign", views.AssignView.as_view(), name="conversation-assign"),
    path("conversations/<int:pk>/close", views.CloseView.as_view(), name="conversation-close"),
    path("conversations/<int:pk>/reopen", views.ReopenView.as_view(), name="conversation-reopen"),
    path("unread_count", views.UnreadCountView.as_view(), name="unread-count"),
    path("notifications/", views.NotificationListView.as_view(), name="notification-list"),
    path(
        "notifications/unread_count",
        views.NotificationUnreadCountView.as_view(),
        name="notification-unread-count",
    ),
    path("notifications/read", views.NotificationReadView.as_view(), name="notification-read"),
    path(
        "notifications/preferences/",
        views.NotificationPreferencesView.as_view(),
        name="notification-preferences",
    ),
    path("inbox/", views.InboxView.as_view(), name="inbox"),
    path("ws-token", views.WebSocketTokenView.as_view(), name="ws-token"),
]
