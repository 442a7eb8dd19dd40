"""EXPERIMENT, not the shipped configuration: the example project with every
``database_sync_to_async`` call of the consumers on asgiref's thread pool
(``thread_sensitive=False``) instead of the one shared thread of the worker.

Used by benchmarks/run.py as the "plugin, DB on a thread pool" target to show how much of
the plugin's cost is the serialisation of all database work of a worker on one thread
(see docs/performance.md, "Profile"). It changes nothing in src/.
"""

from __future__ import annotations

import functools
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_settings")

import channels.db

channels.db.database_sync_to_async = functools.partial(  # type: ignore[assignment]
    channels.db.DatabaseSyncToAsync, thread_sensitive=False
)

from example.asgi import application  # noqa: E402

__all__ = ["application"]
