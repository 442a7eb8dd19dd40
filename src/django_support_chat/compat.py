"""Imports that depend on the Django version.

The tasks framework is ``django.tasks`` on Django 6.0+ and the ``django-tasks`` backport
(``django_tasks``, a dependency of this package) on Django 5.2. ``TASKS_AVAILABLE`` is
false when neither imports; check ``support_chat.E010`` reports it while email is on.
"""

from __future__ import annotations

from typing import Any

TASKS_AVAILABLE = True
task: Any
task_backends: Any
InvalidTaskBackend: type[Exception]

try:
    from django.tasks import task, task_backends
    from django.tasks.exceptions import InvalidTaskBackend
except ImportError:  # Django < 6.0
    try:
        from django_tasks import task, task_backends
        from django_tasks.exceptions import InvalidTaskBackendError as InvalidTaskBackend
    except ImportError:
        TASKS_AVAILABLE = False

        def task(*args: Any, **kwargs: Any) -> Any:
            """Stand-in decorator: the function stays a plain function (no enqueue)."""

            def wrap(func: Any) -> Any:
                return func

            return wrap(args[0]) if args and callable(args[0]) else wrap

        task_backends = None

        class InvalidTaskBackend(Exception):  # type: ignore[no-redef]
            pass


__all__ = ["TASKS_AVAILABLE", "InvalidTaskBackend", "task", "task_backends"]
