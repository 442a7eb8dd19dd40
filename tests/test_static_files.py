"""The widget under the hashed-name storages hosts use in production: Django's
``ManifestStaticFilesStorage`` and WhiteNoise's ``CompressedManifestStaticFilesStorage``.

``collectstatic`` runs for real into a temporary ``STATIC_ROOT`` (with every app of the
example project, so Bootstrap's, Font Awesome's and admin's CSS are post-processed too:
a ``url()`` that does not resolve fails the command). The tag must then point at the
hashed names, for the files on every page and for the panel the loader fetches.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.management import call_command
from django.template import Context, Template
from django.test import RequestFactory, override_settings

from .factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

PACKAGE_STATIC = Path(__file__).resolve().parents[1] / "src/django_support_chat/static"
STORAGES = {
    "django": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage",
    "whitenoise": "whitenoise.storage.CompressedManifestStaticFilesStorage",
}
WIDGET_FILES = {
    "loader.js": "support_chat/widget/loader.js",
    "launcher.css": "support_chat/widget/launcher.css",
    "panel.js": "support_chat/widget/panel.js",
    "panel.css": "support_chat/widget/panel.css",
}
HASHED = r"[0-9a-f]{12}"
CSS_URL = re.compile(r"""url\(\s*(['"]?)(?P<url>[^'")]+)\1\s*\)""")


def hashed(name: str, prefix: str = "/static/") -> str:
    """A pattern for the hashed name of ``name``: ``loader.js`` -> ``loader.<hash>.js``."""
    stem, ext = name.rsplit(".", 1)
    return rf"{re.escape(prefix)}{re.escape(stem)}\.{HASHED}\.{re.escape(ext)}"


@pytest.fixture(params=sorted(STORAGES), scope="module")
def collected(request, tmp_path_factory, django_db_blocker):
    """``STATIC_ROOT`` after ``collectstatic`` with one of the storages (once per module
    and storage: collecting every app takes a few seconds)."""
    root = tmp_path_factory.mktemp(f"static-{request.param}")
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": STORAGES[request.param]},
    }
    with override_settings(STATIC_ROOT=str(root), STATIC_URL="/static/", STORAGES=storages):
        call_command("collectstatic", interactive=False, verbosity=0)
        yield request.param, root


@pytest.fixture
def no_debug(settings):
    settings.DEBUG = False  # with DEBUG=True the manifest storages serve unhashed names


def render_widget() -> str:
    request = RequestFactory().get("/")
    request.user = UserFactory()
    return Template("{% load support_chat %}{% support_chat_widget %}").render(
        Context({"request": request})
    )


def test_collectstatic_writes_a_manifest_with_the_widget_files(collected):
    _, root = collected
    manifest = json.loads((root / "staticfiles.json").read_text())["paths"]
    for name in [*WIDGET_FILES.values(), "support_chat/inbox/inbox.js"]:
        assert name in manifest, name
        assert re.fullmatch(hashed(name, prefix=""), manifest[name]), manifest[name]
        assert (root / manifest[name]).is_file()


def test_whitenoise_also_writes_compressed_copies(collected):
    """WhiteNoise's storage writes a .gz beside each hashed file; Django's writes none."""
    storage, root = collected
    manifest = json.loads((root / "staticfiles.json").read_text())["paths"]
    for name in WIDGET_FILES.values():
        assert (root / f"{manifest[name]}.gz").is_file() == (storage == "whitenoise"), name


def test_url_references_in_the_packages_css_resolve(collected):
    """Every ``url()`` in the package's CSS (after post-processing) names a collected file."""
    _, root = collected
    manifest = json.loads((root / "staticfiles.json").read_text())["paths"]
    for source in PACKAGE_STATIC.rglob("*.css"):
        name = source.relative_to(PACKAGE_STATIC).as_posix()
        target = root / manifest[name]
        for match in CSS_URL.finditer(target.read_text()):
            url = match["url"].split("#", 1)[0].split("?", 1)[0]
            if not url or url.startswith(("data:", "http:", "https:", "//")):
                continue
            assert (target.parent / url).resolve().is_file(), f"{name}: {url}"


@pytest.mark.usefixtures("no_debug")
def test_the_tag_renders_hashed_urls(collected, settings):
    storage, root = collected
    # A fresh storage reads the manifest from disk, as a newly started worker does.
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": STORAGES[storage]}}
    html = render_widget()
    assert re.search(
        rf'<link rel="stylesheet" href="{hashed(WIDGET_FILES["launcher.css"])}">', html
    )
    assert re.search(rf'<script src="{hashed(WIDGET_FILES["loader.js"])}" defer></script>', html)
    config = json.loads(
        re.search(r'<script id="support-chat-config" type="application/json">(.*?)</script>', html)[
            1
        ]
    )
    assert re.fullmatch(hashed(WIDGET_FILES["panel.js"]), config["assets"]["js"])
    assert re.fullmatch(hashed(WIDGET_FILES["panel.css"]), config["assets"]["css"])
    # The URLs name the files collectstatic wrote.
    for url in re.findall(r"/static/support_chat/widget/[\w.]+", html):
        assert (root / url.removeprefix("/static/")).is_file(), url
    assert staticfiles_storage.url(WIDGET_FILES["loader.js"]) in html
