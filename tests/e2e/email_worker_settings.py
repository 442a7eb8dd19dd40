"""The example project's settings for the tasks worker of tests/e2e/test_email_flow.py:
the same database, Redis and links as the server, but emails written as files to
EMAIL_TEST_DIR (the test reads them; the console would print them where nobody looks)."""

import os

from example.settings import *  # noqa: F403

from tests.servers import file_email_settings

globals().update(file_email_settings(os.environ["EMAIL_TEST_DIR"]))
