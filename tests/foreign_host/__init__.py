"""A second, "foreign" host project for the test suite.

Unlike the example project it has an email-login user model without username or first and
last names, its own drf-spectacular API, its own WebSocket endpoint, Django admin at
``/backoffice/`` and hashed static files served by whitenoise. It installs the chat by
following README.md's "Add it to your site" steps only; every edit for the chat is marked
``support-chat: step N``.

Its tests run in a pytest process of their own (``AUTH_USER_MODEL`` differs from the
example project's): ``DJANGO_SETTINGS_MODULE=tests.foreign_host.settings python -m pytest
tests/foreign_host``.
"""
