"""Customer-support live chat for Django sites."""

from __future__ import annotations

__version__ = "0.1.0.dev0"
