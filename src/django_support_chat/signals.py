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
