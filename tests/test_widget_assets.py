"""The widget's static files: size budget (gzipped) and a few safety rules for the code.

Budget (issue #4): what every page loads (loader.js + launcher.css) stays under 2 KB
gzipped; what loads on demand (panel.js + panel.css + the shared WebSocket client
realtime.js, which the loader also fetches alone for a live badge) under 20 KB gzipped.
Run with ``-s`` to see the measured sizes.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[1] / "src/django_support_chat/static/support_chat/widget"
EVERY_PAGE = ["loader.js", "launcher.css"]
ON_DEMAND = ["panel.js", "panel.css", "../realtime.js"]  # realtime.js: static/support_chat/
EVERY_PAGE_BUDGET = 2 * 1024
ON_DEMAND_BUDGET = 20 * 1024


def gzipped_size(name: str) -> int:
    return len(gzip.compress((STATIC / name).read_bytes(), compresslevel=9))


def report(names: list[str]) -> int:
    total = 0
    for name in names:
        raw = (STATIC / name).stat().st_size
        packed = gzipped_size(name)
        total += packed
        print(f"  {name:14} {raw:6} B raw  {packed:6} B gzipped")
    return total


def test_every_page_budget():
    print()
    total = report(EVERY_PAGE)
    print(f"  every page total: {total} B gzipped (budget {EVERY_PAGE_BUDGET} B)")
    assert total <= EVERY_PAGE_BUDGET


def test_on_demand_budget():
    print()
    total = report(ON_DEMAND)
    print(f"  on demand total: {total} B gzipped (budget {ON_DEMAND_BUDGET} B)")
    assert total <= ON_DEMAND_BUDGET


# The SVG namespace is a name (createElementNS), never fetched.
SVG_NAMESPACE = '"http://www.w3.org/2000/svg"'


@pytest.mark.parametrize("name", EVERY_PAGE + ON_DEMAND)
def test_no_third_party_urls(name):
    """No CDN, no framework: nothing is fetched from another origin."""
    text = (STATIC / name).read_text()
    assert not re.search(r"https?://", text.replace(SVG_NAMESPACE, "")), name
    assert "import " not in text and "require(" not in text


def test_panel_inserts_html_only_from_the_servers_html_field():
    """Message text is never inserted as HTML: the only innerHTML is the escaped field."""
    text = (STATIC / "panel.js").read_text()
    sinks = re.findall(
        r"(innerHTML|outerHTML|insertAdjacentHTML|document\.write)\s*(=|\()\s*([^;]*)", text
    )
    assert sinks == [("innerHTML", "=", "message.html")]
    assert "eval(" not in text and "new Function" not in text
    assert "DOMParser" not in text and "createContextualFragment" not in text


def test_panel_builds_icons_from_path_data_not_markup():
    """Icons: the config's path data into createElementNS (or Font Awesome classes); the
    script has no shapes and no Font Awesome class of its own."""
    text = (STATIC / "panel.js").read_text()
    assert text.count("createElementNS(SVG_NS") == 2  # the <svg> and its <path>
    assert 'path.setAttribute("d", (ICONS.svg || {})[name]' in text
    assert "fa-" not in text and "fas " not in text
