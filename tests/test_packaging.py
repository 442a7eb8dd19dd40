"""Packaging: what ships in the wheel, and the example project running against the installed wheel.

A template, static file or migration that the source tree has but the wheel lacks only shows up
once the package is installed from the wheel; these tests install it into a fresh virtualenv
and run the example project there, away from ``src/``.

The wheel is built here (``python -m build --wheel``) unless ``SUPPORT_CHAT_WHEEL`` names a
built wheel or a directory holding one (``scripts/test.sh`` and ``tox -e packaging`` build it
once, from the sdist, and pass it in).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

import django_support_chat

pytestmark = [pytest.mark.slow, pytest.mark.packaging]

ROOT = Path(__file__).resolve().parent.parent
SRC_PACKAGE = ROOT / "src" / "django_support_chat"
EXAMPLE_PROJECT = ROOT / "example_project"

# What the example project needs besides the wheel (its own extras, minus the servers it does
# not use here).
EXAMPLE_REQUIREMENTS = [
    "django-bootstrap-static",
    "fontawesomefree",
    "dj-database-url",
    "daphne",
    "django-tasks-db",  # the example's TASKS backend (delayed chat emails)
]

SKIP_PARTS = {"__pycache__"}
SKIP_SUFFIXES = {".pyc", ".pyo"}


def _run(cmd: list[str], *, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run ``cmd``; on failure, fail the test with its output."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if proc.returncode != 0:
        pytest.fail(
            f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
            f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
        )
    return proc


def _source_files() -> list[str]:
    """Every file of the package in the source tree, as paths inside the wheel."""
    files = []
    for path in SRC_PACKAGE.rglob("*"):
        if not path.is_file() or SKIP_PARTS & set(path.parts) or path.suffix in SKIP_SUFFIXES:
            continue
        files.append(path.relative_to(SRC_PACKAGE.parent).as_posix())
    return sorted(files)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("SUPPORT_CHAT_WHEEL")
    if given:
        path = Path(given)
        if path.is_dir():
            wheels = sorted(path.glob("django_support_chat-*.whl"))
            assert len(wheels) == 1, f"expected one django_support_chat wheel in {path}: {wheels}"
            path = wheels[0]
        assert path.is_file(), f"SUPPORT_CHAT_WHEEL={given} is not a wheel"
        return path
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)])
    (path,) = out.glob("django_support_chat-*.whl")
    return path


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def test_wheel_version_matches_package(wheel: Path) -> None:
    assert wheel.name.startswith(f"django_support_chat-{django_support_chat.__version__}-")


@pytest.mark.parametrize(
    "name",
    [
        "django_support_chat/__init__.py",
        "django_support_chat/py.typed",
        "django_support_chat/migrations/__init__.py",
        "django_support_chat/migrations/0001_initial.py",
        "django_support_chat/templatetags/support_chat.py",
        "django_support_chat/templates/support_chat/widget/button.html",
    ],
)
def test_wheel_contains(wheel_names: set[str], name: str) -> None:
    assert name in wheel_names


def test_wheel_ships_static_files(wheel_names: set[str]) -> None:
    static = [n for n in wheel_names if n.startswith("django_support_chat/static/support_chat/")]
    assert static, "no static files under django_support_chat/static/support_chat/ in the wheel"


def test_wheel_contains_every_source_file(wheel_names: set[str]) -> None:
    """Templates, static files, migrations, locale: whatever ``src/`` has, the wheel has."""
    missing = [name for name in _source_files() if name not in wheel_names]
    assert not missing, f"in src/ but not in the wheel: {missing}"


def test_wheel_has_no_stray_top_level_packages(wheel_names: set[str]) -> None:
    top = {name.split("/", 1)[0] for name in wheel_names}
    strays = {t for t in top if t != "django_support_chat" and not t.endswith(".dist-info")}
    assert not strays, f"the wheel ships more than the package: {sorted(strays)}"
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in wheel_names)


# Runs inside the fresh venv, from a copy of example_project/ (cwd), after migrate + seed_demo.
SMOKE_SCRIPT = textwrap.dedent(
    """
    import json, sys, sysconfig
    from pathlib import Path

    import django

    django.setup()

    import django_support_chat
    from django.contrib.staticfiles import finders
    from django.template.loader import get_template
    from django.test import Client

    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()

    def installed(path):
        return Path(path).resolve().is_relative_to(site_packages)

    assert installed(django_support_chat.__file__), django_support_chat.__file__
    origin = get_template("support_chat/widget/button.html").origin.name
    assert installed(origin), f"widget template from {origin}, not the wheel"
    for name in json.loads(sys.argv[1]):
        found = finders.find(name)
        assert found and installed(found), f"static {name}: {found}"

    import example.asgi  # the ASGI app imports the package's WebSocket routes

    anonymous = Client()
    page = anonymous.get("/")
    assert page.status_code == 200, page.status_code

    client = Client()
    assert client.login(username="customer", password="demo"), "seed_demo's customer cannot log in"
    page = client.get("/")
    assert page.status_code == 200, page.status_code
    html = page.content.decode()
    assert "support-chat" in html, "the widget markup is not on the page"

    api = client.get("/api/chat/conversations/", HTTP_ACCEPT="application/json")
    assert api.status_code == 200, (api.status_code, api.content[:500])
    api.json()

    staff = Client()
    assert staff.login(username="staff", password="demo")
    api = staff.get("/api/chat/conversations/", HTTP_ACCEPT="application/json")
    assert api.status_code == 200, (api.status_code, api.content[:500])
    print("smoke ok:", django_support_chat.__file__)
    """
)


@pytest.fixture(scope="module")
def installed_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel (and the example project's needs) installed."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(wheel),
            *EXAMPLE_REQUIREMENTS,
        ],
        env=_clean_env(),
    )
    return venv


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment minus anything that could point the child at the source tree or at
    services (DATABASE_URL, REDIS_URL): the example runs on its SQLite and in-memory defaults."""
    drop = {
        "PYTHONPATH",
        "PYTHONHOME",
        "VIRTUAL_ENV",
        "DATABASE_URL",
        "REDIS_URL",
        "DJANGO_SETTINGS_MODULE",
        "PYTHONSTARTUP",
    }
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONNOUSERSITE"] = "1"
    env.update(extra)
    return env


def test_example_project_runs_against_installed_wheel(
    installed_venv: Path, wheel_names: set[str], tmp_path: Path
) -> None:
    python = str(installed_venv / "bin" / "python")
    # A copy of example_project/ alone: nothing of src/ (or the repo root) is importable.
    site = tmp_path / "example_project"
    shutil.copytree(
        EXAMPLE_PROJECT,
        site,
        ignore=shutil.ignore_patterns("*.sqlite3", "__pycache__", "staticfiles", "media"),
    )
    env = _clean_env(DJANGO_SETTINGS_MODULE="example.settings")

    def manage(*args: str) -> subprocess.CompletedProcess:
        return _run([python, "manage.py", *args], cwd=site, env=env)

    where = _run(
        [python, "-c", "import django_support_chat as p; print(p.__file__)"], cwd=site, env=env
    ).stdout.strip()
    purelib = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env=env
    ).stdout.strip()
    assert Path(where).resolve().is_relative_to(Path(purelib).resolve()), where
    assert not Path(where).resolve().is_relative_to(ROOT / "src")

    manage("check", "--fail-level", "ERROR")
    manage("migrate", "--noinput")
    # Every migration the models need is in the wheel.
    manage("makemigrations", "support_chat", "--check", "--dry-run")
    manage("seed_demo")
    manage("seed_demo")  # idempotent: scripts/demo.sh runs it on every start
    assert (site / "db.sqlite3").exists()

    prefix = "django_support_chat/static/"
    static = sorted(n[len(prefix) :] for n in wheel_names if n.startswith(prefix) and n[-1] != "/")
    proc = _run([python, "-c", SMOKE_SCRIPT, json.dumps(static)], cwd=site, env=env)
    assert "smoke ok:" in proc.stdout
