"""The ``SUPPORT_CHAT`` settings dict, merged over documented defaults.

Read values through ``chat_settings`` (``chat_settings.MAX_MESSAGE_LENGTH``). The merged
dict is cached and reset on Django's ``setting_changed`` signal, so ``override_settings``
works in tests. Every key is documented in ``docs/settings.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

SETTINGS_NAME = "SUPPORT_CHAT"

DEFAULTS: dict[str, Any] = {
    # Longest message text accepted, in characters.
    "MAX_MESSAGE_LENGTH": 5000,
    # DRF throttle rates ("<n>/<second|minute|hour|day>") per scope, applied per user.
    # None disables a scope. The last three are WebSocket frames that cost a query:
    # sync, message:read and message:delivered (one budget), presence:query.
    "THROTTLE_RATES": {
        "support_chat_send": "30/minute",
        "support_chat": "600/minute",
        "support_chat_sync": "120/minute",
        "support_chat_read": "300/minute",
        "support_chat_presence": "120/minute",
    },
    # Dotted paths to predicates ``(user) -> bool``.
    "STAFF_PREDICATE": "django_support_chat.roles.default_is_staff",
    "ADMIN_PREDICATE": "django_support_chat.roles.default_is_admin",
    # Dotted paths to ``(user) -> str``: how customers are named (to staff) and how staff
    # members are named (to customers). The staff default never shows a login or an email
    # address: the full name when set, else the team name (WIDGET_TEXTS["title"]).
    "CUSTOMER_DISPLAY_NAME": "django_support_chat.names.default_customer_display_name",
    "STAFF_DISPLAY_NAME": "django_support_chat.names.default_staff_display_name",
    # User fields (lookups from the user model, e.g. "email" or "profile__company") that the
    # inbox search and the admin match. None: the model's USERNAME_FIELD, EMAIL_FIELD and the
    # name fields it has.
    "CUSTOMER_SEARCH_FIELDS": None,
    # Presence: a connection counts as online for PRESENCE_TTL seconds after its last
    # heartbeat; clients send one every HEARTBEAT_INTERVAL seconds.
    "PRESENCE_TTL": 30,
    "HEARTBEAT_INTERVAL": 10,
    # Typing indicators stop on their own after this many seconds without a refresh.
    "TYPING_TIMEOUT": 5,
    # Messages per history page and conversations per inbox page.
    "HISTORY_PAGE_SIZE": 50,
    "INBOX_PAGE_SIZE": 30,
    # Template the staff inbox pages extend; point it at your dashboard layout.
    "INBOX_BASE_TEMPLATE": "support_chat/inbox/base.html",
    # Whether the inbox pages load htmx themselves ({% htmx_script %}); turn it off when
    # INBOX_BASE_TEMPLATE already loads htmx 2.
    "INBOX_INCLUDE_HTMX": True,
    # PostgreSQL text search configuration of the inbox search ("simple": no stemming,
    # any language). Ignored on other databases.
    "INBOX_SEARCH_CONFIG": "simple",
    # URL of the sound the inbox plays for new activity (when a staff member turns sound
    # on); None: the package's own chime (static support_chat/inbox/chime.wav).
    "INBOX_SOUND_URL": None,
    # Icons of the widget and the inbox: "svg" (the package's own inline SVGs, no icon font
    # needed) or "fontawesome" (<i class="fas fa-…">, from the host's Font Awesome 5 or 6).
    "ICONS": "svg",
    # Copy shown in the widget. Values may be lazy translations.
    "WIDGET_TEXTS": {
        "title": _("Support"),
        "tooltip": _("Chat with support"),
        "placeholder": _("Type your message…"),
        "empty": _("Ask us anything. We reply quickly."),
        "offline": _("You're offline. Messages will send when you're back."),
        "retry": _("Tap to retry"),
        "new_messages": _("new"),
        "send": _("Send"),
        "minimize": _("Minimize chat"),
        "close": _("Close chat"),
        "messages": _("Messages"),
        "online": _("Support is online"),
        "away": _("Support is away"),
        "typing": _("Support is typing…"),
        "you": _("You"),
        "today": _("Today"),
        "yesterday": _("Yesterday"),
        "sending": _("Sending"),
        "sent": _("Sent"),
        "delivered": _("Delivered"),
        "read": _("Read"),
        "failed": _("Not sent"),
        "loading": _("Loading…"),
        "load_error": _("Could not load the messages."),
        "try_again": _("Try again"),
        # The toast for a staff reply while the panel is hidden ({name}: the sender's name).
        "new_reply_from": _("New reply from {name}"),
        "dismiss": _("Dismiss"),
    },
    # Distance of the floating button from the viewport edge (CSS lengths).
    "WIDGET_OFFSET_DESKTOP": "20px",
    "WIDGET_OFFSET_MOBILE": "16px",
    # Whether {% support_chat_widget %} renders on the staff inbox pages (when
    # INBOX_BASE_TEMPLATE is the site's layout). Off: staff answer in the inbox itself.
    "WIDGET_ON_INBOX": False,
    # Where the widget finds the REST API and the WebSocket routes.
    "API_URL_NAME": "support_chat:conversation-list",
    "WEBSOCKET_PATH_PREFIX": "/ws/chat/",
    # WebSockets: largest frame accepted (bytes), frames allowed per client per 10 s before
    # the socket is closed for flooding, typing frames relayed per second, and the lifetime
    # of the signed tokens non-browser clients fetch from ``ws-token``.
    "WS_MAX_FRAME_BYTES": 32768,
    "WS_FLOOD_LIMIT": 100,
    "TYPING_RATE": 2,
    "WS_TOKEN_MAX_AGE": 60,
    # Open WebSockets one user may have at once (all routes, all workers); one more is
    # refused with close code 4430.
    "WS_MAX_SOCKETS_PER_USER": 20,
    # Threads per worker for the sockets' database calls (dbthreads.py); one conversation
    # always uses the same one. None: 4, or 1 (Channels' shared thread) on SQLite.
    "WS_DATABASE_THREADS": None,
    # Pushback (docs/protocol.md, "Slowing down"): sends accepted but not yet stored, per
    # worker process (WebSocket message:send frames, REST message POSTs, inbox replies).
    # One more is refused at once ("overloaded", HTTP 503) and its client retries after
    # SEND_RETRY_AFTER seconds with the same client_id. None: unbounded.
    "SEND_QUEUE_LIMIT": 20,
    # Sends are refused too while the worker's event loop runs this many seconds late
    # (sendqueue.LoopLag). None: never.
    "SEND_MAX_LAG": 0.2,
    "SEND_RETRY_AFTER": 1.0,
    # Redis URL for presence; None means the in-process store (single process only).
    # When unset and CHANNEL_LAYERS uses channels-redis, its first host is used.
    "PRESENCE_REDIS_URL": None,
    # Size of the presence store's Redis pool per worker. The pool blocks (up to 20 s,
    # presence.POOL_TIMEOUT) when exhausted instead of raising MaxConnectionsError.
    "PRESENCE_REDIS_MAX_CONNECTIONS": 50,
    # Prefix of the presence keys in Redis; give each site sharing one Redis its own.
    "PRESENCE_KEY_PREFIX": "support_chat:presence",
    # Email to people who are not online (docs/notifications.md). Who gets one: customers
    # for staff replies, the assignee for customer messages, every staff member for a
    # customer message in an unassigned conversation while no staff member is online.
    # "enabled": False turns email off entirely; "builtin_email": False keeps the rules and
    # the notification_due signal but sends no email (a host's receivers send push or SMS).
    "EMAIL_NOTIFICATIONS": {
        "enabled": True,
        "customer_replies": True,
        "assigned_staff": True,
        "unassigned_to_all_staff": True,
        "builtin_email": True,
    },
    # Seconds after a message before its email may go out; at most one email per
    # conversation and recipient per this many seconds.
    "EMAIL_DELAY": 120,
    # Sender address; None means DEFAULT_FROM_EMAIL.
    "EMAIL_FROM": None,
    # Templates of the email (also overridable by a template of the same name).
    "EMAIL_TEMPLATES": {
        "subject": "support_chat/email/subject.txt",
        "text": "support_chat/email/message.txt",
        "html": "support_chat/email/message.html",
    },
    # Scheme and host that make the email's links absolute ("https://example.com"); None:
    # the current django.contrib.sites Site over https, when that app is installed.
    "EMAIL_BASE_URL": None,
    # Where a customer's email links to (path or absolute URL); "#support-chat" is added,
    # which makes the widget open its panel.
    "EMAIL_CUSTOMER_URL": "/",
    # Alias in TASKS of the backend the email tasks are enqueued on.
    "EMAIL_TASK_BACKEND": "default",
    # Seconds each readiness check (database, channel layer round trip, presence store)
    # may take before it counts as failed (docs/operations.md).
    "HEALTH_TIMEOUT": 2,
    # Who may read chat/metrics (Prometheus, docs/operations.md "Metrics"): client
    # addresses (REMOTE_ADDR) in these networks; an empty list with no METRICS_TOKEN turns
    # the endpoint off (404). Behind a proxy on the same host, REMOTE_ADDR is the proxy's
    # unless the server trusts its forwarded headers (uvicorn --proxy-headers).
    "METRICS_ALLOWED": ["127.0.0.1/32", "::1/128"],
    # A secret: a request with "Authorization: Bearer <token>" may read the metrics from
    # any address. None: no token.
    "METRICS_TOKEN": None,
}

# Settings whose value must be a dict, merged key by key with the default.
_NESTED = ("THROTTLE_RATES", "WIDGET_TEXTS", "EMAIL_NOTIFICATIONS", "EMAIL_TEMPLATES")
# Settings holding dotted paths, imported on first access.
_IMPORT_STRINGS = (
    "STAFF_PREDICATE",
    "ADMIN_PREDICATE",
    "CUSTOMER_DISPLAY_NAME",
    "STAFF_DISPLAY_NAME",
)


class ChatSettings:
    """Attribute access to ``SUPPORT_CHAT`` merged over ``DEFAULTS``."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    @property
    def user_settings(self) -> dict[str, Any]:
        value = getattr(settings, SETTINGS_NAME, None) or {}
        return value if isinstance(value, dict) else {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in DEFAULTS:
            raise AttributeError(f"Unknown {SETTINGS_NAME} setting: {name!r}")
        if name in self._cache:
            return self._cache[name]
        value = self.user_settings.get(name, DEFAULTS[name])
        if name in _NESTED and isinstance(value, dict):
            value = {**DEFAULTS[name], **value}
        if name in _IMPORT_STRINGS and isinstance(value, str):
            value = import_string(value)
        self._cache[name] = value
        return value

    def reload(self) -> None:
        self._cache.clear()


chat_settings = ChatSettings()


def get_predicate(name: str) -> Callable[[Any], bool]:
    return getattr(chat_settings, name)  # type: ignore[no-any-return]


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTINGS_NAME:
        chat_settings.reload()


setting_changed.connect(_reload)
