"""ASGI entry point of the foreign host: HTTP through Django, WebSockets through the chat
(its paths under /ws/chat/) or the host's own endpoint (every other path)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.foreign_host.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402  # support-chat: step 4

from django_support_chat.routing import websocket_application  # noqa: E402  # support-chat: step 4

from .echo import host_websockets  # noqa: E402

# support-chat: step 4 (before: the host answered "websocket" scopes with host_websockets)
application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": websocket_application(fallback=host_websockets),
    }
)
