"""ASGI entry point: HTTP through Django, WebSockets through django-support-chat's routes."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
django_asgi_app = get_asgi_application()  # before importing anything that touches models

from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

if settings.DEBUG:  # so uvicorn serves the demo's static files too (runserver already does)
    django_asgi_app = ASGIStaticFilesHandler(django_asgi_app)

from channels.routing import ProtocolTypeRouter  # noqa: E402

from django_support_chat.routing import websocket_application  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # The chat's sockets under /ws/chat/, with their Origin check and session auth. The
        # demo has no sockets of its own; a site that has some passes them as fallback=.
        "websocket": websocket_application(),
    }
)
