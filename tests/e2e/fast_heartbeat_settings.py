"""The example project with a 2-second heartbeat, for the dead-socket browser test."""

from example.settings import *  # noqa: F403

SUPPORT_CHAT = {**SUPPORT_CHAT, "HEARTBEAT_INTERVAL": 2, "PRESENCE_TTL": 6}  # noqa: F405
