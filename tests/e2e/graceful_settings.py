"""The production topology's settings (tests/e2e/nginx_settings.py) for the rolling-restart
test (tests/e2e/test_graceful_deploy.py): its sender posts a message every ~100 ms, far
above the default send throttle (30/minute), so that scope is off here."""

from .nginx_settings import *  # noqa: F403

SUPPORT_CHAT = {**SUPPORT_CHAT, "THROTTLE_RATES": {"support_chat_send": None}}  # noqa: F405
