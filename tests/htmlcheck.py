"""Parse rendered message HTML and say exactly which tags and attributes it holds."""

from __future__ import annotations

from html.parser import HTMLParser

from django_support_chat.text import LINK_REL

ALLOWED_LINK_ATTRS = {"href", "rel", "target"}


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> tuple[list[tuple[str, dict[str, str | None]]], str]:
    """(tags with their attributes, visible text) of an HTML fragment."""
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector.tags, "".join(collector.text)


def assert_inert(html: str) -> list[dict[str, str | None]]:
    """Fail unless the only markup is safe links; return the links' attributes."""
    tags, _text = parse(html)
    links = []
    for tag, attrs in tags:
        assert tag == "a", f"live <{tag}> in {html!r}"
        assert set(attrs) == ALLOWED_LINK_ATTRS, f"unexpected attributes {attrs} in {html!r}"
        assert (attrs["href"] or "").startswith(("http://", "https://")), html
        assert attrs["rel"] == LINK_REL
        links.append(attrs)
    return links
