"""The end-to-end rig works: a logged-in browser sees the example site with the widget."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_logged_in_page_has_the_widget_and_anonymous_does_not(new_context, make_user):
    user = make_user("casey")
    page = new_context(user).new_page()
    page.goto("/")
    assert page.locator(".support-chat-launcher").count() == 1
    anonymous = new_context().new_page()
    anonymous.goto("/")
    assert anonymous.locator(".support-chat-launcher").count() == 0
