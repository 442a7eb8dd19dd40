"""Background tasks (Django's tasks framework: ``django.tasks``, or the backport on 5.2).

Enqueued by ``notifications.enqueue`` with ``run_after`` the due time; a worker of the
host's ``TASKS`` backend runs them (``manage.py db_worker`` for django-tasks-db).
"""

from __future__ import annotations

from . import notifications
from .compat import task


@task()
def send_email_notification(notification_id: int) -> str:
    """Send pending email ``notification_id`` if it is due and still wanted.

    Idempotent: a second run, a retry or another worker finds the row no longer pending
    (or locked) and does nothing. Returns what happened (``sent``, ``skipped:<reason>``,
    ``early``, ``gone``, ``error``).
    """
    return _deliver(notification_id)


@task()
def send_email_notifications(notification_ids: list[int]) -> list[str]:
    """``send_email_notification`` for several rows due at the same time (the staff of an
    unassigned conversation): one task per window instead of one per staff member. Each
    row is delivered on its own (its own transaction and lock); a row this task does not
    reach (a crash midway) stays pending for ``support_chat_send_notifications``."""
    return [_deliver(pk) for pk in notification_ids]


def _deliver(notification_id: int) -> str:
    outcome = notifications.deliver(notification_id)
    return f"{outcome.result}:{outcome.reason}" if outcome.reason else outcome.result
