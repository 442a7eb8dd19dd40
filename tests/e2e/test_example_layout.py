"""The example site on a phone (390x844, mobile emulation): no page is wider than the
screen, so the phone does not zoom out, and the chat launcher keeps its 16 px
(``WIDGET_OFFSET_MOBILE``) from the edges.

A page only 12 px too wide (a Bootstrap ``.row.g-5``, whose 24 px negative margins stick
out of the container's 12 px padding) made the browser lay out 402 px and put the launcher
4 px from the screen's edge.
"""

from __future__ import annotations

import pytest

from .widget_helpers import no_server_errors, watch_page  # noqa: F401 (a fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("no_server_errors"),
]

WIDTH = 390
PHONE = {
    "viewport": {"width": WIDTH, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
}
OFFSET = 16  # WIDGET_OFFSET_MOBILE's default

MEASURE = """() => {
  const launcher = document.querySelector('.support-chat-launcher');
  const box = launcher ? launcher.getBoundingClientRect() : null;
  return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    innerHeight: window.innerHeight,
    right: box && box.right,
    bottom: box && box.bottom,
  };
}"""


def assert_fits(page, path: str) -> dict:
    size = page.evaluate(MEASURE)
    assert size["scrollWidth"] <= WIDTH, f"{path} is {size['scrollWidth']} px wide"
    assert size["innerWidth"] == WIDTH, f"{path}: the phone zoomed out ({size})"
    return size


@pytest.mark.parametrize("path", ["/", "/pricing/", "/account/"])
def test_site_pages_fit_a_phone_and_the_launcher_keeps_its_offset(new_context, make_user, path):
    page = new_context(make_user("casey"), **PHONE).new_page()
    errors = watch_page(page)
    page.goto(path)
    page.locator(".support-chat-launcher").wait_for()
    size = assert_fits(page, path)
    assert abs(size["innerWidth"] - size["right"] - OFFSET) <= 1, size
    assert abs(size["innerHeight"] - size["bottom"] - OFFSET) <= 1, size
    assert errors == []


def test_login_page_fits_a_phone(new_context):
    page = new_context(**PHONE).new_page()
    page.goto("/login/")
    assert_fits(page, "/login/")


def test_staff_dashboard_fits_a_phone_without_the_launcher(new_context, make_user):
    page = new_context(make_user("sam", is_staff=True), **PHONE).new_page()
    errors = watch_page(page)
    page.goto("/admin/chat/")
    page.locator("#sc-inbox").wait_for()
    assert_fits(page, "/admin/chat/")
    assert page.locator(".support-chat-launcher").count() == 0  # WIDGET_ON_INBOX is off
    assert errors == []


@pytest.mark.parametrize("width", [576, 768, 992, 1200, 1400])
def test_home_page_fits_wider_screens_too(new_context, make_user, width):
    """The home page's wider gutter comes back from 992 px (lg), where it fits."""
    page = new_context(make_user("casey"), viewport={"width": width, "height": 800}).new_page()
    page.goto("/")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
