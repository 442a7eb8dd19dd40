"""The package's icons (icons.py): one owner of the shapes, inline SVG by default, the
host's Font Awesome only when ``SUPPORT_CHAT["ICONS"] = "fontawesome"``."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from django.template import Context, Template
from django.test import RequestFactory

from django_support_chat import checks, icons
from django_support_chat.templatetags.support_chat import widget_config

from .factories import UserFactory

PACKAGE = Path(__file__).resolve().parents[1] / "src/django_support_chat"
TEMPLATES = PACKAGE / "templates/support_chat"
STATIC = PACKAGE / "static/support_chat"
PANEL_JS = STATIC / "widget/panel.js"
INBOX_JS = STATIC / "inbox/inbox.js"

SPEC_ICONS = ("comments", "paper-plane", "minus", "times", "circle", "search")
# SVG path data: commands and numbers only.
PATH_DATA = re.compile(r"^[MmLlHhVvCcSsQqTtAaZz0-9., \-]+$")
NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)")


def template_icon_names() -> set[str]:
    names = set()
    for path in TEMPLATES.rglob("*.html"):
        names |= set(re.findall(r'{% support_chat_icon "([^"]+)"', path.read_text()))
    return names


def panel_icon_names() -> set[str]:
    text = PANEL_JS.read_text()
    names = set(re.findall(r'\bicon\("([^"]+)"\)', text))
    # The receipts' icons, by state.
    status = re.search(r"var names = (\{[^}]*\});", text)
    assert status, "statusIcon's names not found"
    names |= set(re.findall(r':\s*"([^"]+)"', status[1]))
    return names


def inbox_js_icon_names() -> set[str]:
    receipt = re.search(r"var RECEIPT_ICON = (\{[^}]*\});", INBOX_JS.read_text())
    assert receipt, "RECEIPT_ICON not found"
    return set(re.findall(r':\s*"([^"]+)"', receipt[1]))


def render(source: str, **context) -> str:
    return Template("{% load support_chat %}" + source).render(Context(context))


# The set of icons ----------------------------------------------------------------------------


def test_every_icon_used_exists():
    used = template_icon_names() | panel_icon_names() | inbox_js_icon_names()
    assert {"comments", "paper-plane", "search", "check", "check-double"} <= used
    assert used - set(icons.SHAPES) == set()
    # The scripts get exactly the icons they draw.
    assert panel_icon_names() == set(icons.PANEL_ICONS)
    assert inbox_js_icon_names() == set(icons.INBOX_SCRIPT_ICONS)


def test_the_specs_icons_and_a_font_awesome_name_for_each():
    assert set(SPEC_ICONS) <= set(icons.SHAPES)
    assert set(icons.FONTAWESOME) == set(icons.SHAPES)
    for name, classes in icons.FONTAWESOME.items():
        # fas/far + the Font Awesome 5 name: both Font Awesome 5 and 6 have them.
        assert re.fullmatch(r"fa[sr] fa-[a-z-]+", classes), name


def test_no_font_awesome_left_in_the_templates_and_scripts():
    """Every icon goes through icons.py: no ``fa-`` class written anywhere else."""
    files = [*TEMPLATES.rglob("*.html"), *STATIC.rglob("*.js"), *STATIC.rglob("*.css")]
    offenders = [str(path) for path in files if re.search(r"\bfa[srb]?[ -]", path.read_text())]
    assert offenders == []


@pytest.mark.parametrize("name", sorted(icons.SHAPES))
def test_shapes_are_path_data_on_the_16_grid(name):
    shape = icons.SHAPES[name]
    assert PATH_DATA.match(shape), name
    assert shape.startswith("M") and shape.endswith("Z")
    # Absolute coordinates stay inside the viewBox (relative ones are small steps).
    for number in NUMBER.findall(shape):
        assert -16 <= float(number) <= 16, (name, number)


# Rendering -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(icons.SHAPES))
def test_svg_markup_is_valid_and_hidden_from_screen_readers(name):
    html = icons.icon_html(name)
    svg = ET.fromstring(html)  # well-formed (also as XML)
    assert svg.tag == "svg"
    assert svg.attrib == {
        "class": "sc-icon",
        "viewBox": "0 0 16 16",
        "width": "1em",
        "height": "1em",
        "fill": "currentColor",
        "fill-rule": "evenodd",
        "aria-hidden": "true",
        "focusable": "false",
    }
    [path] = list(svg)
    assert path.tag == "path" and path.attrib == {"d": icons.SHAPES[name]}


def test_the_panels_svg_wrapper_is_the_same_as_the_servers():
    """panel.js draws path data into the same <svg> attributes as icon_html."""
    match = re.search(r"var SVG_ATTRS = \{(.*?)\};", PANEL_JS.read_text(), re.S)
    assert match
    pairs = dict(re.findall(r'"?([\w-]+)"?:\s*"([^"]*)"', match[1]))
    assert pairs == ET.fromstring(icons.svg_html("minus")).attrib


def test_extra_classes_and_attributes_are_escaped():
    html = icons.icon_html("check", class_="me-1", data_sc_icon="check", title='a "b" <c>')
    svg = ET.fromstring(html)
    assert svg.get("class") == "sc-icon me-1"
    assert svg.get("data-sc-icon") == "check"
    assert svg.get("title") == 'a "b" <c>'
    assert "&quot;b&quot; &lt;c&gt;" in html


def test_unknown_names_fail_loudly():
    with pytest.raises(ValueError, match="Unknown support chat icon 'fa-comments'"):
        icons.icon_html("fa-comments")
    with pytest.raises(ValueError):
        icons.script_icons(["nope"])


def test_template_tag():
    html = render('{% support_chat_icon "search" class="sc-icon-2x" %}')
    assert html.startswith('<svg class="sc-icon sc-icon-2x" viewBox="0 0 16 16"')
    html = render("{% support_chat_icon name data_sc_icon=name %}", name="check")
    assert 'data-sc-icon="check"' in html


# Font Awesome mode ---------------------------------------------------------------------------


@pytest.fixture
def fontawesome(settings):
    settings.SUPPORT_CHAT = {"ICONS": "fontawesome"}


def test_fontawesome_mode_renders_the_hosts_classes(fontawesome):
    assert icons.icon_html("comments") == '<i class="fas fa-comments" aria-hidden="true"></i>'
    assert render('{% support_chat_icon "times" class="sc-icon-close" %}') == (
        '<i class="fas fa-times sc-icon-close" aria-hidden="true"></i>'
    )
    assert render('{% support_chat_icon "keyboard" %}') == (
        '<i class="far fa-keyboard" aria-hidden="true"></i>'
    )
    assert icons.script_icons(["minus", "redo"]) == {
        "fa": {"minus": "fas fa-minus", "redo": "fas fa-redo"}
    }


@pytest.mark.django_db
def test_widget_config_and_launcher_follow_the_setting(settings):
    user = UserFactory()
    request = RequestFactory().get("/")
    request.user = user
    config = widget_config(request, user)
    assert config["icons"] == {"svg": {name: icons.SHAPES[name] for name in icons.PANEL_ICONS}}
    json.dumps(config["icons"])  # JSON for the config block
    html = render("{% support_chat_widget %}", request=request)
    assert re.search(r'<button type="button" class="support-chat-launcher[^>]*>\s*<svg ', html)

    settings.SUPPORT_CHAT = {"ICONS": "fontawesome"}
    config = widget_config(request, user)
    assert config["icons"] == {"fa": {name: icons.FONTAWESOME[name] for name in icons.PANEL_ICONS}}
    html = render("{% support_chat_widget %}", request=request)
    assert '<i class="fas fa-comments" aria-hidden="true"></i>' in html
    assert "<svg" not in html


# The setting ---------------------------------------------------------------------------------


def test_unknown_values_count_as_svg_and_the_check_reports_them(settings):
    settings.SUPPORT_CHAT = {"ICONS": "Font Awesome"}
    assert icons.mode() == "svg"
    [error] = checks.check_settings()
    assert error.id == "support_chat.E004"
    assert "SUPPORT_CHAT['ICONS'] must be 'svg' or 'fontawesome'" in error.msg
    for value in ("svg", "fontawesome"):
        settings.SUPPORT_CHAT = {"ICONS": value}
        assert checks.check_settings() == []
        assert icons.mode() == value
