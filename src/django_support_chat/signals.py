"""Public signals a host project can connect to (sent after the change is committed)."""

from __future__ import annotations

from django.dispatch import Signal

#: ``message``, ``conversation``
message_created = Signal()
#: ``conversation``
conversation_started = Signal()
#: ``conversation``, ``actor``, ``assignee`` (``None`` when unassigned)
conversation_assigned = Signal()
#: ``conversation``, ``actor``
conversation_closed = Signal()
#: ``conversation``, ``actor``
conversation_reopened = Signal()
#: ``recipient``, ``conversation``, ``messages`` (the unread messages covered, oldest
#: first), ``channel`` (``"email"``), ``notification`` (the ``EmailNotification`` row).
#: Sent after commit when the rules say "tell this person now": the person is not online
#: and has not read the messages after ``EMAIL_DELAY``. Connect to it to send push or
#: SMS; ``EMAIL_NOTIFICATIONS["builtin_email"] = False`` leaves it to your receivers.
notification_due = Signal()
