"""The chat's readiness checks for django-health-check (4.x), for hosts that use it.

django-health-check 4 has no plugin registry: a host lists the checks of its endpoint in
its URLconf. Add the chat's next to its own::

    from health_check.views import HealthCheckView
    from django_support_chat.ops.health_check import CHECKS

    path("ht/", HealthCheckView.as_view(checks=[*HealthCheckView.checks, *CHECKS])),

Each check runs the function of the same name in ``django_support_chat.health`` (bounded
by ``HEALTH_TIMEOUT``) and raises ``ServiceUnavailable`` with its short reason when it
fails. Importing this module needs django-health-check (``pip install
"django-support-chat[health]"``).
"""

from __future__ import annotations

import dataclasses
import datetime

from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable

from .. import health


def _raise_for(result: health.CheckResult) -> None:
    if not result.ok:
        raise ServiceUnavailable(result.error or "failed")


class _ChatCheck(HealthCheck):
    # django-health-check's own budget: above ours, so our shorter timeout reports first.
    @property
    def timeout(self) -> datetime.timedelta:  # type: ignore[override]
        return datetime.timedelta(seconds=health.timeout() + 1)


@dataclasses.dataclass
class ChatDatabase(_ChatCheck):
    """``SELECT 1`` on the database ``alias``."""

    alias: str = "default"

    async def run(self) -> None:
        _raise_for(await health.check_database(self.alias))


@dataclasses.dataclass
class ChatChannelLayer(_ChatCheck):
    """A message through the channel layer ``alias`` and back."""

    alias: str = "default"

    async def run(self) -> None:
        _raise_for(await health.check_channel_layer(self.alias))


@dataclasses.dataclass
class ChatPresence(_ChatCheck):
    """The presence store answers."""

    async def run(self) -> None:
        _raise_for(await health.check_presence())


# What to add to HealthCheckView.checks: the chat's three. ChatDatabase repeats django-
# health-check's own Database check (in its defaults) for the chat's timeout; leave it out
# of your list if you keep that one.
CHECKS: tuple[str, ...] = (
    "django_support_chat.ops.health_check.ChatDatabase",
    "django_support_chat.ops.health_check.ChatChannelLayer",
    "django_support_chat.ops.health_check.ChatPresence",
)
