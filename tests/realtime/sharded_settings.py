"""The example project's settings with a channel layer sharded over two Redis servers, for
the uvicorn workers of tests/realtime/test_sharded_redis.py.

``SHARD_URLS`` (comma-separated Redis URLs) become the layer's ``hosts``; ``SHARD_BACKEND``
picks channels-redis' pub/sub layer (``pubsub``) or its list-based one (``core``). The
presence store is left to its default: the layer's first host.
"""

import os

from example.settings import *  # noqa: F403

_BACKENDS = {
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "core": "channels_redis.core.RedisChannelLayer",
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": _BACKENDS[os.environ.get("SHARD_BACKEND", "pubsub")],
        "CONFIG": {
            "hosts": [
                {"address": url, "max_connections": 100}
                for url in os.environ["SHARD_URLS"].split(",")
            ],
        },
    }
}
# The rate limits, shared by the workers (check support_chat.W005): on the first server.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ["SHARD_URLS"].split(",")[0],
    }
}
