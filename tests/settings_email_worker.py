"""Settings of the subprocess worker in tests/test_email_worker.py: the test settings with
the database from DATABASE_URL (the test process's test database) and emails written as
files to EMAIL_TEST_DIR, which the test reads (a subprocess cannot share locmem's outbox)."""

import os

from tests.servers import file_email_settings
from tests.settings import *  # noqa: F403

globals().update(file_email_settings(os.environ["EMAIL_TEST_DIR"]))

SUPPORT_CHAT = {"EMAIL_BASE_URL": "https://worker.example.org"}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_support_chat": {"handlers": ["console"], "level": "INFO"},
        "django_tasks_db": {"handlers": ["console"], "level": "INFO"},
        "django.tasks": {"handlers": ["console"], "level": "INFO"},
    },
}
