"""Keep the documentation honest: it must match the code and point at files that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from django_support_chat.conf import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
CHECKS_SOURCE = ROOT / "src" / "django_support_chat" / "checks.py"

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")
SHELL_LANGUAGES = {"bash", "sh", "shell", "console", "zsh", "shell-session"}


# --- a small Markdown reader: enough for these files, no dependency ----------------------


def parse(path: Path) -> tuple[list[str], list[tuple[str, str, str]]]:
    """Return (prose lines outside code blocks, [(heading above, info string, body)])."""
    prose: list[str] = []
    blocks: list[tuple[str, str, str]] = []
    heading = ""
    fence: str | None = None
    info = ""
    body: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if fence is None:
            match = FENCE.match(line)
            if match:
                fence, info, body = match["fence"], match["info"].strip(), []
                continue
            title = HEADING.match(line)
            if title:
                heading = title[2]
            prose.append(line)
        elif line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
            blocks.append((heading, info, "\n".join(body)))
            fence = None
        else:
            body.append(line)
    assert fence is None, f"{path.name}: unclosed code block"
    return prose, blocks


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links -> their text
    text = text.replace("`", "")
    text = re.sub(r"\\(.)", r"\1", text)  # backslash escapes
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    prose, _ = parse(path)
    seen: dict[str, int] = {}
    result: set[str] = set()
    for line in prose:
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match[2])
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(path: Path) -> list[str]:
    prose, _ = parse(path)
    found: list[str] = []
    for line in prose:
        definition = REFERENCE_DEF.match(line)
        if definition:
            found.append(definition[1])
            continue
        found.extend(INLINE_LINK.findall(CODE_SPAN.sub("", line)))
    return found


def table_rows(prose: list[str], header: list[str]) -> list[list[str]]:
    """Cells of the rows of the one table whose header row is ``header``."""
    tables = []
    for index, line in enumerate(prose):
        if cells(line) == header:
            rows = []
            for row in prose[index + 2 :]:
                if not row.strip().startswith("|"):
                    break
                rows.append(cells(row))
            tables.append(rows)
    assert len(tables) == 1, f"expected one table headed {header}, found {len(tables)}"
    return tables[0]


def cells(line: str) -> list[str]:
    line = line.strip()
    if not line.startswith("|"):
        return []
    parts = re.split(r"(?<!\\)\|", line.strip("|"))
    return [part.strip().replace("\\|", "|") for part in parts]


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


# --- settings ------------------------------------------------------------------------------


SETTINGS_HEADER = ["Setting", "Default", "Description"]
CODE_CELL = re.compile(r"^`([^`]+)`$")


def settings_rows() -> list[list[str]]:
    prose, _ = parse(DOCS / "settings.md")
    return table_rows(prose, SETTINGS_HEADER)


def test_settings_table_lists_exactly_the_defaults() -> None:
    names = []
    for row in settings_rows():
        match = CODE_CELL.match(row[0])
        assert match, f"first cell must be the setting name in backticks: {row[0]!r}"
        names.append(match[1])
    assert len(names) == len(set(names)), "a setting is listed twice"
    assert set(DEFAULTS) - set(names) == set(), "settings missing from docs/settings.md"
    assert set(names) - set(DEFAULTS) == set(), "docs/settings.md lists unknown settings"


def test_settings_table_quotes_the_real_defaults() -> None:
    for row in settings_rows():
        name = CODE_CELL.match(row[0])[1]  # type: ignore[index]
        quoted = CODE_CELL.match(row[1])
        if name not in DEFAULTS or not quoted:
            continue  # the name test reports unknown names; prose defaults are not checked
        assert ast.literal_eval(quoted[1]) == DEFAULTS[name], f"default of {name}"


def test_widget_texts_table_matches_the_defaults() -> None:
    prose, _ = parse(DOCS / "settings.md")
    rows = table_rows(prose, ["Key", "Default"])
    documented = {CODE_CELL.match(key)[1]: text for key, text in rows}  # type: ignore[index]
    assert documented == {key: str(text) for key, text in DEFAULTS["WIDGET_TEXTS"].items()}


# --- checks --------------------------------------------------------------------------------


CHECK_ID = re.compile(r"support_chat\.[EW]\d{3}")


def test_every_check_id_is_documented() -> None:
    implemented = set(CHECK_ID.findall(CHECKS_SOURCE.read_text(encoding="utf-8")))
    assert implemented, "no check ids found in checks.py"
    documented = set(CHECK_ID.findall((DOCS / "checks.md").read_text(encoding="utf-8")))
    assert implemented - documented == set(), "check ids missing from docs/checks.md"
    assert documented - implemented == set(), "docs/checks.md documents ids that do not exist"


# --- README --------------------------------------------------------------------------------


def test_readme_has_exactly_the_two_setup_commands() -> None:
    _, blocks = parse(README)
    shell = [
        (heading, body.strip())
        for heading, info, body in blocks
        if info.split()[:1] and info.split()[0] in SHELL_LANGUAGES
    ]
    assert shell == [
        ("Run the demo", "bash scripts/demo.sh"),
        ("Run the tests", "bash scripts/test.sh"),
    ]
    quick_start = [info for heading, info, _ in blocks if heading.startswith("Run the ")]
    assert quick_start == ["bash", "bash"], "the Run the ... sections hold one bash block each"


# --- links ---------------------------------------------------------------------------------


def relative_links() -> list[tuple[Path, str]]:
    return [
        (path, target)
        for path in markdown_files()
        for target in links(path)
        if not SCHEME.match(target)
    ]


@pytest.mark.parametrize(
    ("source", "target"),
    [pytest.param(path, target, id=f"{path.name}->{target}") for path, target in relative_links()],
)
def test_relative_link_points_to_an_existing_file(source: Path, target: str) -> None:
    file_part, _, fragment = target.partition("#")
    destination = (source.parent / file_part).resolve() if file_part else source
    assert destination.exists(), f"{source.name}: {target} does not exist"
    assert ROOT in destination.parents or destination == ROOT, f"{target} leaves the repository"
    if fragment and destination.suffix == ".md":
        assert fragment in anchors(destination), f"{source.name}: no heading for #{fragment}"


def test_the_markdown_reader_works() -> None:
    found = {(path.name, target) for path, target in relative_links()}
    assert ("README.md", "docs/installation.md") in found
    assert ("checks.md", "installation.md#production") in found
    assert "production" in anchors(DOCS / "installation.md")
    assert slug("POST conversations/\\<id\\>/messages/") == "post-conversationsidmessages"


def test_the_readme_steps_are_what_the_foreign_host_needed():
    """README's "Add it to your site" has five numbered steps, and the foreign host in
    ``tests/foreign_host`` (installed by following them) marks its edits with exactly those
    step numbers: the README's count is the real count."""
    section = README.read_text().split("## Add it to your site", 1)[1].split("\n## ", 1)[0]
    readme_steps = [int(n) for n in re.findall(r"^\*\*(\d+)\. ", section, re.MULTILINE)]
    assert readme_steps == [1, 2, 3, 4, 5]
    marked = set()
    for path in (ROOT / "tests" / "foreign_host").rglob("*"):
        if path.suffix in (".py", ".html"):
            marked |= {int(n) for n in re.findall(r"support-chat: step (\d+)", path.read_text())}
    assert marked == set(readme_steps)
