"""Staff inbox routes. Mount them before Django admin's own ``admin/`` route::

path("admin/chat/", include("django_support_chat.inbox.urls")),
path("admin/", admin.site.urls),
"""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "support_chat_inbox"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("<int:pk>/", views.inbox, name="conversation"),
    path("rows/", views.rows, name="rows"),
    path("rows/<int:pk>/", views.row, name="row"),
    path("bulk/", views.bulk, name="bulk"),
    path("alerts/unread/", views.unread, name="unread_counts"),
    path("alerts/preferences/", views.preferences, name="preferences"),
    path("<int:pk>/header/", views.header, name="header"),
    path("<int:pk>/messages/", views.history, name="messages"),
    path("<int:pk>/reply/", views.reply, name="reply"),
    path("<int:pk>/assign/", views.assign, name="assign"),
    path("<int:pk>/status/", views.set_status, name="status"),
    path("<int:pk>/read/", views.mark_read, name="read"),
    path("<int:pk>/unread/", views.mark_unread, name="unread"),
]
