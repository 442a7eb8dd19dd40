"""The example project's settings for the tasks worker of tests/e2e/test_email_flow.py:
the same database, Redis and links as the server, but emails written as files to
EMAIL_TEST_DIR (the test reads them; the console would print them where nobody looks)."""

import os

import django
from example.settings import *  # noqa: F403

if django.VERSION >= (6, 1):
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "OPTIONS": {"file_path": os.environ["EMAIL_TEST_DIR"]},
        }
    }
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = os.environ["EMAIL_TEST_DIR"]
