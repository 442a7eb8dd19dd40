"""Send every pending chat email that is due: the safety net beside the task worker.

Safe to run from cron every minute, and alongside workers: each row is claimed with
``SELECT … FOR UPDATE SKIP LOCKED`` and sent at most once.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_support_chat import notifications


class Command(BaseCommand):
    help = "Send the support chat's pending email notifications that are due."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--limit", type=int, default=None, help="Handle at most this many rows."
        )

    def handle(self, *args: Any, limit: int | None = None, **options: Any) -> None:
        counts = notifications.send_due(limit=limit)
        summary = ", ".join(f"{key}: {value}" for key, value in sorted(counts.items()))
        self.stdout.write(summary or "Nothing due.")
