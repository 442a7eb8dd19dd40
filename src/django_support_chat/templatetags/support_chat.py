"""``{% load support_chat %}{% support_chat_widget %}``: the floating chat for signed-in users.

The tag renders the launcher button with the server-side unread count (no extra request
from the browser), a JSON config block (``json_script``: texts, URLs, limits) and the tiny
loader script. The chat panel's JS and CSS are fetched by the loader when needed; see
docs/widget.md.
"""

from __future__ import annotations

import logging
from typing import Any

from django import template
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language

from ..conf import chat_settings
from ..icons import PANEL_ICONS, icon_html, script_icons
from ..models import Conversation

register = template.Library()
logger = logging.getLogger("django_support_chat")

LOADER_JS = "support_chat/widget/loader.js"
LAUNCHER_CSS = "support_chat/widget/launcher.css"
PANEL_JS = "support_chat/widget/panel.js"
PANEL_CSS = "support_chat/widget/panel.css"
# The shared WebSocket client: the panel needs it, the loader fetches it alone for a live badge.
REALTIME_JS = "support_chat/realtime.js"


def widget_config(request: Any, user: Any) -> dict[str, Any]:
    """Everything the widget's JavaScript needs, rendered into the page as JSON."""
    # The widget shows the customer's latest conversation (the one the API's
    # ``GET conversations/`` returns first), so the badge counts that one's unread messages.
    latest = (
        Conversation.objects.for_customer(user)
        .order_by("-last_message_at", "-id")
        .values_list("id", "unread_user_count")
        .first()
    )
    conversation_id, unread = latest if latest else (None, 0)
    return {
        "user": user.pk,
        "conversation": conversation_id,
        "unread": unread,
        "api": reverse(chat_settings.API_URL_NAME),
        "ws": chat_settings.WEBSOCKET_PATH_PREFIX,
        # Also sets the CSRF cookie on this response, so the panel's POSTs work on pages
        # that render no form.
        "csrf": get_token(request) if request is not None else "",
        "csrf_cookie": settings.CSRF_COOKIE_NAME,
        "heartbeat_interval": chat_settings.HEARTBEAT_INTERVAL,
        "typing_timeout": chat_settings.TYPING_TIMEOUT,
        "max_message_length": chat_settings.MAX_MESSAGE_LENGTH,
        "lang": get_language() or "",
        "texts": {key: str(value) for key, value in chat_settings.WIDGET_TEXTS.items()},
        "assets": {"js": static(PANEL_JS), "css": static(PANEL_CSS), "rt": static(REALTIME_JS)},
        # The panel's icons: SVG path data from icons.py (or Font Awesome classes).
        "icons": script_icons(PANEL_ICONS),
    }


INBOX_NAMESPACE = "support_chat_inbox"


def _on_inbox(request: Any) -> bool:
    """Whether ``request`` is for a staff inbox page, wherever the host mounts the inbox."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return False
    return INBOX_NAMESPACE in match.app_names or INBOX_NAMESPACE in match.namespaces


def _static_files_missing() -> bool:
    """Whether the storage cannot give the widget's URLs (logged as an error).

    ``ManifestStaticFilesStorage`` (and WhiteNoise's) raises ``ValueError`` for a file its
    manifest lacks, when ``collectstatic`` has not run since the package was installed or
    upgraded. Rendering nothing keeps the host's pages up."""
    try:
        for name in (LAUNCHER_CSS, LOADER_JS, PANEL_JS, PANEL_CSS, REALTIME_JS):
            static(name)
    except ValueError as exc:
        logger.error(
            "The support chat widget is not rendered: the static files storage has no URL "
            "for its files (%s). Run `python manage.py collectstatic` after installing or "
            "upgrading django-support-chat.",
            exc,
        )
        return True
    except ImproperlyConfigured as exc:  # STATIC_URL unset (system check support_chat.W004)
        logger.error("The support chat widget is not rendered: %s", exc)
        return True
    return False


@register.simple_tag(takes_context=True)
def support_chat_widget(context: template.Context) -> SafeString:
    """Render nothing for anonymous users, on the staff inbox pages (unless
    ``WIDGET_ON_INBOX``) and when the static files are missing; the launcher, config and
    loader otherwise."""
    request = context.get("request")
    user = getattr(request, "user", None) or context.get("user")
    if user is None or not user.is_authenticated:
        return mark_safe("")
    if not chat_settings.WIDGET_ON_INBOX and _on_inbox(request):
        return mark_safe("")
    if _static_files_missing():
        return mark_safe("")
    config = widget_config(request, user)
    widget_context: dict[str, Any] = {
        "config": config,
        "unread": config["unread"],
        "unread_display": "99+" if config["unread"] > 99 else str(config["unread"]),
        "texts": config["texts"],
        "offset_desktop": chat_settings.WIDGET_OFFSET_DESKTOP,
        "offset_mobile": chat_settings.WIDGET_OFFSET_MOBILE,
        "loader_js": LOADER_JS,
        "launcher_css": LAUNCHER_CSS,
    }
    return mark_safe(
        render_to_string("support_chat/widget/widget.html", widget_context, request=request)
    )


@register.simple_tag
def support_chat_icon(name: str, **attrs: Any) -> SafeString:
    """``{% support_chat_icon "paper-plane" class="me-1" %}``: one of the package's icons,
    inline SVG or Font Awesome as ``SUPPORT_CHAT["ICONS"]`` says (see icons.py)."""
    return icon_html(name, **attrs)
