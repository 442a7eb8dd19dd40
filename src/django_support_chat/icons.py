"""The package's icons: one place for their shapes, whether or not the page has Font Awesome.

Every icon the widget and the inbox show is a small SVG drawn for this package on a 16x16
grid (``SHAPES``: one path each, filled with ``currentColor``, holes by the even-odd rule),
inlined into the HTML, so nothing is fetched and nothing goes blank on a page without an
icon font. With ``SUPPORT_CHAT["ICONS"] = "fontawesome"`` the same names render as the
host's Font Awesome classes instead (``FONTAWESOME``, names that work in Font Awesome 5 and
6).

- Templates: ``{% load support_chat %}{% support_chat_icon "paper-plane" %}``.
- Python: ``icon_html("paper-plane", class_="me-1")``.
- Scripts: the widget's config carries ``script_icons(PANEL_ICONS)`` (path data, or the
  Font Awesome classes), the inbox page renders ``INBOX_SCRIPT_ICONS`` into a
  ``<template id="sc-icons">``; neither script has shapes of its own.
"""

from __future__ import annotations

from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from .conf import chat_settings

SVG = "svg"
FONT_AWESOME = "fontawesome"
MODES = (SVG, FONT_AWESOME)

VIEWBOX = "0 0 16 16"

# name -> SVG path data on the 16x16 grid (drawn for this package).
SHAPES: dict[str, str] = {
    # Two speech bubbles, the back one only where the front one leaves room (launcher).
    "comments": (
        "M2 1h6.5a2 2 0 0 1 2 2v3.5a2 2 0 0 1-2 2H5.5L2.5 11V8.5H2a2 2 0 0 1-2-2V3a2 2 0 0 1 2-2Z"
        "M12.5 5H14a2 2 0 0 1 2 2v4a2 2 0 0 1-2 2v2.5L11 13H8.5a2 2 0 0 1-2-2v-.5h2a4 4 0 0 0 4-4Z"
    ),
    # Two wings meeting at the nose, top right (send).
    "paper-plane": "M16 0 0 6.6l4.5 2.1ZM16 0 5.8 9.9v5.8l2.9-3.5 4.4 2.3Z",
    "minus": "M2 7h12v2H2Z",
    "times": "M3.4 2 8 6.6 12.6 2 14 3.4 9.4 8 14 12.6 12.6 14 8 9.4 3.4 14 2 12.6 6.6 8 2 3.4Z",
    "circle": "M2 8a6 6 0 1 1 12 0A6 6 0 1 1 2 8Z",
    # A ring and a handle that starts on the ring's edge (search).
    "search": (
        "M1 6.5a5.5 5.5 0 1 1 11 0A5.5 5.5 0 1 1 1 6.5Z"
        "M2.8 6.5a3.7 3.7 0 1 1 7.4 0 3.7 3.7 0 1 1-7.4 0Z"
        "M9.4 11.17l2.51 2.51 1.77-1.77-2.51-2.51A5.5 5.5 0 0 1 9.4 11.17Z"
    ),
    "check": "M1.09 8.91 6 13.81l9.11-9.1-1.42-1.42L6 10.99 2.51 7.49Z",
    # Two checks side by side, apart (delivered, read).
    "check-double": (
        "M0 9.2 4.2 13.4 11.6 6 10.4 4.8 4.2 11 1.2 8Z"
        "M7 11.4 9 13.4 15.6 6.8 14.4 5.6 9 11 8.2 10.2Z"
    ),
    # A ring with the hands at four o'clock (sending).
    "clock": (
        "M.5 8a7.5 7.5 0 1 1 15 0A7.5 7.5 0 1 1 .5 8Z"
        "M2 8a6 6 0 1 1 12 0A6 6 0 1 1 2 8Z"
        "M7.25 4h1.5v3.6l2.6 1.5-.75 1.3-3.35-1.95Z"
    ),
    # A clockwise arrow open at the top right (retry).
    "redo": (
        "M14.47 9.73A6.7 6.7 0 1 1 11.35 2.2L12.1.9l1.2 4.74-3.6-.58.75-1.3A4.9 4.9 0 1 0 12.73 "
        "9.27Z"
    ),
    # A dot and three bands (offline banner).
    "wifi": (
        "M6.4 14a1.6 1.6 0 1 1 3.2 0 1.6 1.6 0 1 1-3.2 0Z"
        "M4.46 10.46a5 5 0 0 1 7.08 0L10.4 11.6a3.4 3.4 0 0 0-4.8 0Z"
        "M2.34 8.34a8 8 0 0 1 11.32 0l-1.13 1.13a6.4 6.4 0 0 0-9.06 0Z"
        "M.22 6.22a11 11 0 0 1 15.56 0l-1.13 1.13a9.4 9.4 0 0 0-13.3 0Z"
    ),
    "arrow-down": "M7 1.5h2v9.1l3.3-3.3 1.4 1.4L8 14.4 2.3 8.7l1.4-1.4L7 10.6Z",
    "arrow-left": "M14.5 7v2H5.4l3.3 3.3-1.4 1.4L1.6 8l5.7-5.7 1.4 1.4L5.4 7Z",
    # A head and shoulders (assignee).
    "user": "M4.5 4.5a3.5 3.5 0 1 1 7 0 3.5 3.5 0 1 1-7 0ZM1.5 15.5C1.5 12 4.4 9.5 8 9.5s6.5 2.5 6.5 6Z",
    # A rounded case with two rows of keys and a space bar cut out (keyboard shortcuts).
    "keyboard": (
        "M1.5 3h13A1.5 1.5 0 0 1 16 4.5v7a1.5 1.5 0 0 1-1.5 1.5h-13A1.5 1.5 0 0 1 0 11.5v-7A1.5 "
        "1.5 0 0 1 1.5 3Z"
        "M2.2 5h1.6v1.6H2.2ZM4.7 5h1.6v1.6H4.7ZM7.2 5h1.6v1.6H7.2ZM9.7 5h1.6v1.6H9.7ZM12.2 5h1.6v1.6h-1.6Z"
        "M2.2 7.4h1.6V9H2.2ZM4.7 7.4h1.6V9H4.7ZM7.2 7.4h1.6V9H7.2ZM9.7 7.4h1.6V9H9.7ZM12.2 7.4h1.6V9h-1.6Z"
        "M4.5 9.8h7v1.4h-7Z"
    ),
}

# name -> Font Awesome classes, for SUPPORT_CHAT["ICONS"] = "fontawesome" (Font Awesome 5
# names with the ``fas``/``far`` prefixes, which Font Awesome 6 keeps as aliases).
FONTAWESOME: dict[str, str] = {
    "comments": "fas fa-comments",
    "paper-plane": "fas fa-paper-plane",
    "minus": "fas fa-minus",
    "times": "fas fa-times",
    "circle": "fas fa-circle",
    "search": "fas fa-search",
    "check": "fas fa-check",
    "check-double": "fas fa-check-double",
    "clock": "far fa-clock",
    "redo": "fas fa-redo",
    "wifi": "fas fa-wifi",
    "arrow-down": "fas fa-arrow-down",
    "arrow-left": "fas fa-arrow-left",
    "user": "far fa-user",
    "keyboard": "far fa-keyboard",
}

# The icons panel.js draws (in the widget's config) and those inbox.js clones.
PANEL_ICONS = (
    "minus",
    "times",
    "wifi",
    "paper-plane",
    "check",
    "check-double",
    "clock",
    "redo",
    "arrow-down",
)
INBOX_SCRIPT_ICONS = ("check", "check-double")


def mode() -> str:
    """``SUPPORT_CHAT["ICONS"]``; anything unknown counts as ``"svg"`` (check E004 reports it)."""
    value = chat_settings.ICONS
    return value if value in MODES else SVG


def _attrs(attrs: dict[str, Any]) -> SafeString:
    """`` key="value"`` pairs, escaped; ``data_x`` becomes ``data-x``; None/False are left out."""
    return format_html_join(
        "",
        ' {}="{}"',
        (
            (key.rstrip("_").replace("_", "-"), "" if value is True else value)
            for key, value in attrs.items()
            if value is not None and value is not False
        ),
    )


def _split(name: str, attrs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if name not in SHAPES:
        raise ValueError(f"Unknown support chat icon {name!r}; known: {', '.join(sorted(SHAPES))}.")
    attrs = dict(attrs)
    extra = " ".join(str(attrs.pop(key)) for key in ("class", "class_") if attrs.get(key))
    return extra, attrs


def svg_html(name: str, **attrs: Any) -> SafeString:
    """The inline SVG of icon ``name`` (decorative: ``aria-hidden``, not focusable)."""
    extra, attrs = _split(name, attrs)
    return format_html(
        '<svg class="{}" viewBox="{}" width="1em" height="1em" fill="currentColor" '
        'fill-rule="evenodd" aria-hidden="true" focusable="false"{}><path d="{}"></path></svg>',
        f"sc-icon {extra}".strip(),
        VIEWBOX,
        _attrs(attrs),
        SHAPES[name],
    )


def fontawesome_html(name: str, **attrs: Any) -> SafeString:
    """``<i class="fas fa-…" aria-hidden="true">``: icon ``name`` from the host's Font Awesome."""
    extra, attrs = _split(name, attrs)
    return format_html(
        '<i class="{}" aria-hidden="true"{}></i>',
        f"{FONTAWESOME[name]} {extra}".strip(),
        _attrs(attrs),
    )


def icon_html(name: str, **attrs: Any) -> SafeString:
    """Icon ``name`` as the ``ICONS`` setting asks: inline SVG (default) or Font Awesome.

    ``class`` (or ``class_``) is added to the icon's own classes; other keyword arguments
    become attributes (``data_sc_icon="check"``: ``data-sc-icon="check"``)."""
    if mode() == FONT_AWESOME:
        return fontawesome_html(name, **attrs)
    return svg_html(name, **attrs)


def script_icons(names: tuple[str, ...] | list[str]) -> dict[str, dict[str, str]]:
    """The icons a script draws, for its JSON config: ``{"svg": {name: path data}}``, or
    ``{"fa": {name: classes}}`` in Font Awesome mode."""
    for name in names:
        _split(name, {})
    if mode() == FONT_AWESOME:
        return {"fa": {name: FONTAWESOME[name] for name in names}}
    return {"svg": {name: SHAPES[name] for name in names}}
