"""The migrations match the models: a model change without a migration fails here."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_missing_migrations():
    out = StringIO()
    try:
        call_command(
            "makemigrations", "support_chat", "--check", "--dry-run", stdout=out, stderr=out
        )
    except SystemExit:  # --check exits non-zero when a migration is missing
        pytest.fail(f"support_chat has model changes without a migration:\n{out.getvalue()}")
    assert "No changes detected" in out.getvalue()
