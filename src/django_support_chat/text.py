"""Validation and safe rendering of message text.

Text is stored exactly as written (after trimming surrounding whitespace) and never
rendered as live HTML: ``render_text`` escapes it and then linkifies URLs with bleach.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any

import bleach
from bleach.linkifier import Linker
from django.core.exceptions import ValidationError
from django.utils.html import escape
from django.utils.translation import gettext as _

from .conf import chat_settings

# C0 and C1 control characters except tab, line feed and carriage return, plus the
# Unicode bidi overrides that can disguise text.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Lone surrogates (JSON allows "\ud800") cannot be encoded as UTF-8: no database stores them.
_SURROGATES = re.compile(r"[\ud800-\udfff]")

LINK_REL = "nofollow noopener noreferrer"


def clean_text(value: Any) -> str:
    """Return the text to store, or raise ``ValidationError`` saying what is wrong."""
    if not isinstance(value, str):
        raise ValidationError(_("Message text must be a string."), code="invalid_type")
    text = value.strip()
    if not text:
        raise ValidationError(_("Message text may not be blank."), code="blank")
    limit = chat_settings.MAX_MESSAGE_LENGTH
    if len(text) > limit:
        raise ValidationError(
            _("Message text may not be longer than %(limit)d characters (it has %(length)d).")
            % {"limit": limit, "length": len(text)},
            code="max_length",
        )
    if _CONTROL_CHARS.search(text):
        raise ValidationError(
            _("Message text may not contain control characters."), code="control_characters"
        )
    if _SURROGATES.search(text):
        raise ValidationError(
            _("Message text may not contain invalid Unicode characters."), code="surrogates"
        )
    return text


def _set_link_attrs(attrs: dict[Any, str], new: bool = False) -> dict[Any, str] | None:
    href_key = (None, "href")
    href = attrs.get(href_key, "")
    if not href.startswith(("http:", "https:", "mailto:")):
        return None  # leave anything else as plain text
    attrs[(None, "rel")] = LINK_REL
    attrs[(None, "target")] = "_blank"
    return attrs


# A bleach ``Linker`` keeps parser and tokenizer state between calls and is not
# thread-safe: two request threads sharing one raised IndexError deep inside html5lib.
# Each thread builds its own on first use (a few KB; request threads are long-lived).
_local = threading.local()


def _linker() -> Linker:
    linker: Linker | None = getattr(_local, "linker", None)
    if linker is None:
        linker = _local.linker = Linker(
            callbacks=[_set_link_attrs], skip_tags=["pre", "code"], parse_email=False
        )
    return linker


# functools.lru_cache is thread-safe (its bookkeeping is locked); two threads missing on
# the same text at once both render it, with the same result.
# Called once per message, when it is stored (services.send_message; Message.html); reads
# use the stored copy. The cache spares a resend, or the same short text sent again.
@functools.lru_cache(maxsize=512)
def render_text(text: str) -> str:
    """Escape ``text`` and turn bare URLs into safe links. The result is safe HTML.

    Safe to call from any number of threads at once."""
    return _linker().linkify(escape(text))


__all__ = ["LINK_REL", "bleach", "clean_text", "render_text"]
