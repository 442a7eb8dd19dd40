"""The example project for the live pushback tests (tests/test_pushback.py): PostgreSQL
through Django's psycopg pool with the sizes the test asks for, CONN_MAX_AGE 0, and the
test's SEND_QUEUE_LIMIT. The environment:

    PUSHBACK_POOL           "<max_size>,<timeout seconds>"; empty: no pool (a connection
                            per request, as with CONN_MAX_AGE 0)
    PUSHBACK_LIMIT          SEND_QUEUE_LIMIT ("none": unbounded)
"""

import os

from example.settings import *  # noqa: F403

DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
_options = DATABASES["default"].setdefault("OPTIONS", {})  # noqa: F405
_options.pop("pool", None)
if os.environ.get("PUSHBACK_POOL"):
    _size, _timeout = os.environ["PUSHBACK_POOL"].split(",")
    _options["pool"] = {"min_size": 1, "max_size": int(_size), "timeout": float(_timeout)}

_limit = os.environ.get("PUSHBACK_LIMIT", "50")
SUPPORT_CHAT = {
    **SUPPORT_CHAT,  # noqa: F405
    "SEND_QUEUE_LIMIT": None if _limit == "none" else int(_limit),
    "SEND_RETRY_AFTER": 0.5,
}
