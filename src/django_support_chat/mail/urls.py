"""Routes linked from the chat's emails, namespace ``support_chat_mail``::

path("chat/email/", include("django_support_chat.mail.urls")),
"""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "support_chat_mail"

urlpatterns = [
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
