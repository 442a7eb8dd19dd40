"""Settings of a host that serves its own drf-spectacular schema, with the chat installed
(``tests/urls_host_schema.py``; used by ``tests/test_schema.py`` in processes of their own).

In a process of its own because drf-spectacular's own views take ``DEFAULT_SCHEMA_CLASS``
when they are imported: a host has it in its settings from the start.
"""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "drf_spectacular"]  # noqa: F405
ROOT_URLCONF = "tests.urls_host_schema"
REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
SPECTACULAR_SETTINGS = {"TITLE": "Host API", "VERSION": "1.0.0"}
