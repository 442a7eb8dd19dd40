"""The chat's emails through real workers on PostgreSQL: exactly once under concurrency,
django-tasks-db's worker (in a thread, with the locmem outbox, and as a ``db_worker``
subprocess writing emails to files), and a SIGTERMed worker that loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from django_support_chat import notifications, presence
from django_support_chat.models import EmailNotification

from .factories import ConversationFactory, UserFactory, send
from .servers import database_url
from .test_concurrency import require_postgresql, run_concurrently

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _email_settings(settings):
    require_postgresql()
    settings.SUPPORT_CHAT = {"EMAIL_BASE_URL": "https://chat.example.org"}
    presence.get_presence_store().clear()  # type: ignore[attr-defined]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def reply_to_customer(text: str = "We fixed it") -> tuple[Any, EmailNotification]:
    customer = UserFactory(customer=True, email="carol@example.com")
    staff = UserFactory(staff=True, first_name="Sam", last_name="Support")
    conversation = ConversationFactory(customer=customer)
    send(conversation, staff, text)  # commits: the row is scheduled and enqueued
    return customer, EmailNotification.objects.get(recipient=customer, status="pending")


def make_due(row: EmailNotification) -> None:
    EmailNotification.objects.filter(pk=row.pk).update(due_at=timezone.now() - timedelta(seconds=1))


def test_many_workers_at_once_send_exactly_one_email(mailoutbox):
    customer, row = reply_to_customer()
    make_due(row)
    outcomes: list[str] = []
    lock = threading.Lock()

    def task() -> None:
        result = notifications.deliver(row.pk).result
        with lock:
            outcomes.append(result)

    def command() -> None:
        counts = notifications.send_due()
        with lock:
            outcomes.extend(key for key, n in counts.items() for _ in range(n))

    run_concurrently([task] * 16 + [command] * 4)
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [customer.email]
    assert outcomes.count("sent") == 1
    assert set(outcomes) <= {"sent", "gone"}
    row.refresh_from_db()
    assert row.status == "sent"


def test_a_send_in_progress_on_the_conversation_does_not_hold_the_email_back(mailoutbox):
    """The claim locks the email row only: a conversation locked by a concurrent send
    (send_message holds its row lock) neither blocks the email nor makes SKIP LOCKED
    pass over it."""
    from django.db import transaction

    from django_support_chat.models import Conversation

    _customer, row = reply_to_customer()
    make_due(row)
    locked, release = threading.Event(), threading.Event()

    def hold_the_conversation() -> None:
        try:
            with transaction.atomic():
                Conversation.objects.select_for_update().get(pk=row.conversation_id)
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_conversation)
    holder.start()
    try:
        assert locked.wait(30)
        assert notifications.deliver(row.pk).result == "sent"
    finally:
        release.set()
        holder.join(30)
    assert len(mailoutbox) == 1


class ThreadWorker:
    """django-tasks-db's own Worker loop, in a thread of this process (shares locmem)."""

    def __init__(self) -> None:
        self.worker = Worker(
            queue_names=["default"],
            interval=0.05,
            batch=False,
            backend_name="default",
            startup_delay=False,
            max_tasks=None,
            worker_id="thread-worker",
            excluded_queue_names=[],
        )
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run()
        finally:
            connection.close()

    def __enter__(self) -> ThreadWorker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.worker.running = False
        self.thread.join(10)
        assert not self.thread.is_alive()


def test_the_real_worker_sends_after_the_delay(settings, mailoutbox):
    settings.SUPPORT_CHAT = {**settings.SUPPORT_CHAT, "EMAIL_DELAY": 2}
    customer, row = reply_to_customer("Your order shipped")
    assert customer.email == "carol@example.com"
    [task] = DBTaskResult.objects.all()
    assert task.run_after == row.due_at
    with ThreadWorker():
        [message] = wait_for(lambda: list(mailoutbox), 30, "the email")
    row.refresh_from_db()
    assert row.status == "sent"
    assert row.processed_at >= row.due_at  # never before the delay
    assert "Your order shipped" in message.body
    assert message.to == [customer.email]
    task.refresh_from_db()
    assert task.status == "SUCCESSFUL"
    assert task.return_value == "sent"


def test_the_real_worker_skips_what_was_read_meanwhile(settings, mailoutbox):
    from django_support_chat import services

    settings.SUPPORT_CHAT = {**settings.SUPPORT_CHAT, "EMAIL_DELAY": 1}
    customer, row = reply_to_customer()
    services.mark_read(row.conversation, customer)
    with ThreadWorker():
        wait_for(
            lambda: EmailNotification.objects.filter(pk=row.pk, status="skipped").exists(),
            30,
            "the row to be skipped",
        )
    assert mailoutbox == []


def start_worker(email_dir: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_email_worker",
        "DATABASE_URL": database_url(),
        "EMAIL_TEST_DIR": str(email_dir),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example_project")]),
        "DEBUG": "0",  # no autoreloader
    }
    return subprocess.Popen(
        [sys.executable, "-m", "django", "db_worker", "--interval", "0.1", "--no-startup-delay"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


class Output:
    """The lines a subprocess prints, collected by a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self.thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line)

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)


def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def test_sigterm_and_restart_of_a_db_worker_subprocess_lose_nothing(settings, tmp_path):
    settings.SUPPORT_CHAT = {**settings.SUPPORT_CHAT, "EMAIL_DELAY": 4}
    customer, row = reply_to_customer("Refund approved")
    outbox = tmp_path / "outbox"
    first = start_worker(outbox)
    output = Output(first)
    try:
        wait_for(lambda: output.has("Starting worker"), 60, "the first worker to start")
    finally:
        # Stopped before the email is due: the task is still queued.
        assert stop(first) == 0, "".join(output.lines)
    row.refresh_from_db()
    assert row.status == "pending"
    assert not outbox.exists() or not list(outbox.iterdir())

    second = start_worker(outbox)
    output = Output(second)
    try:
        files = wait_for(lambda: outbox.exists() and list(outbox.iterdir()), 60, "the email file")
        wait_for(
            lambda: EmailNotification.objects.filter(pk=row.pk, status="sent").exists(),
            30,
            "the row to be marked sent",
        )
    finally:
        stop(second)
    [file] = files
    text = file.read_text()
    assert f"To: {customer.email}" in text
    assert "Refund approved" in text
    assert "https://worker.example.org/#support-chat" in text
    assert len(list(outbox.iterdir())) == 1


def test_the_staff_of_an_unassigned_conversation_get_one_task_and_every_email(settings, mailoutbox):
    """A customer message nobody is assigned to: one INSERT for every staff member's row
    and one task (send_email_notifications) for all of them, which the real worker runs:
    each staff member gets their email."""
    from django.db import connection as conn
    from django.test.utils import CaptureQueriesContext

    settings.SUPPORT_CHAT = {**settings.SUPPORT_CHAT, "EMAIL_DELAY": 2}
    staff = [UserFactory(staff=True, email=f"agent{i}@example.com") for i in range(3)]
    conversation = ConversationFactory()
    with CaptureQueriesContext(conn) as captured:
        send(conversation, conversation.customer, "Is anyone there?")
    inserts = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("INSERT INTO")]
    rows = [s for s in inserts if "support_chat_emailnotification" in s]
    tasks = [s for s in inserts if "dbtaskresult" in s]
    assert len(rows) == 1 and len(tasks) == 1, inserts
    assert EmailNotification.objects.filter(status="pending").count() == 3
    [task] = DBTaskResult.objects.all()
    assert task.task_path.endswith("send_email_notifications")
    with ThreadWorker():
        wait_for(lambda: len(mailoutbox) == 3, 30, "three emails")
    assert sorted(m.to[0] for m in mailoutbox) == sorted(s.email for s in staff)
    assert set(EmailNotification.objects.values_list("status", flat=True)) == {"sent"}
