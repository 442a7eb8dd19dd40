from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SupportChatConfig(AppConfig):
    name = "django_support_chat"
    label = "support_chat"
    verbose_name = _("Support chat")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, receivers  # noqa: F401  (checks register on import)

        receivers.connect()
