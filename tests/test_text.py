"""Message text: what is accepted (``clean_text``) and how it is shown (``render_text``)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from django_support_chat.text import LINK_REL, clean_text, render_text

from .htmlcheck import assert_inert, parse


class TestCleanText:
    def test_returns_text_trimmed(self):
        assert clean_text("  hello there \n") == "hello there"

    def test_keeps_inner_newlines_and_tabs(self):
        assert clean_text("line 1\n\tline 2\r\nline 3") == "line 1\n\tline 2\r\nline 3"

    def test_keeps_unicode(self):
        assert clean_text("Grüße 👋 שלום") == "Grüße 👋 שלום"

    @pytest.mark.parametrize("value", ["", " ", "   \n\t  ", "\u3000\u00a0"])
    def test_blank_and_whitespace_only_rejected(self, value):
        with pytest.raises(ValidationError) as excinfo:
            clean_text(value)
        assert excinfo.value.code == "blank"

    def test_length_limit_default_5000(self):
        assert clean_text("a" * 5000) == "a" * 5000
        with pytest.raises(ValidationError) as excinfo:
            clean_text("a" * 5001)
        assert excinfo.value.code == "max_length"
        assert "5000" in excinfo.value.messages[0]
        assert "5001" in excinfo.value.messages[0]

    def test_length_counted_after_trimming(self):
        assert clean_text("  " + "a" * 5000 + "  ") == "a" * 5000

    @override_settings(SUPPORT_CHAT={"MAX_MESSAGE_LENGTH": 10})
    def test_length_limit_from_settings(self):
        assert clean_text("0123456789") == "0123456789"
        with pytest.raises(ValidationError) as excinfo:
            clean_text("0123456789X")
        assert excinfo.value.code == "max_length"

    @pytest.mark.parametrize(
        "value",
        [
            "nul\x00byte",
            "bell\x07",
            "esc\x1b[31mred",
            "vertical\x0btab",
            "del\x7fchar",
            "c1\x85control",
            "bidi \u202e override",
            "isolate \u2066x\u2069",
        ],
    )
    def test_control_characters_rejected(self, value):
        with pytest.raises(ValidationError) as excinfo:
            clean_text(value)
        assert excinfo.value.code == "control_characters"

    @pytest.mark.parametrize("value", ["lone \ud800 high", "lone \udfff low"])
    def test_lone_surrogates_rejected(self, value):
        """JSON may carry "\\ud800"; no database can store it as UTF-8."""
        with pytest.raises(ValidationError) as excinfo:
            clean_text(value)
        assert excinfo.value.code == "surrogates"

    @pytest.mark.parametrize("value", [None, 42, 4.2, True, ["hi"], {"text": "hi"}, b"hi"])
    def test_non_strings_rejected(self, value):
        with pytest.raises(ValidationError) as excinfo:
            clean_text(value)
        assert excinfo.value.code == "invalid_type"


class TestRenderText:
    def test_plain_text_unchanged(self):
        assert render_text("hello") == "hello"

    def test_script_escaped(self):
        html = render_text("<script>alert(1)</script>")
        assert html == "&lt;script&gt;alert(1)&lt;/script&gt;"
        assert_inert(html)

    def test_img_onerror_escaped(self):
        html = render_text('<img src=x onerror="alert(1)">')
        assert "<img" not in html
        assert_inert(html)
        assert parse(html)[1] == '<img src=x onerror="alert(1)">'  # shown as typed

    def test_existing_anchor_markup_escaped(self):
        html = render_text('<a href="javascript:alert(1)">click</a>')
        assert assert_inert(html) == []

    @pytest.mark.parametrize(
        "url", ["https://example.com/path?a=1&b=2", "http://example.org", "https://x.io/#frag"]
    )
    def test_http_urls_linkified(self, url):
        html = render_text(f"see {url} now")
        links = assert_inert(html)
        assert len(links) == 1
        assert links[0]["href"] == url
        assert links[0]["rel"] == LINK_REL == "nofollow noopener noreferrer"
        assert links[0]["target"] == "_blank"
        assert parse(html)[1] == f"see {url} now"

    @pytest.mark.parametrize(
        "text",
        [
            "javascript:alert(1)",
            "JavaScript:alert(document.cookie)",
            "data:text/html,<script>alert(1)</script>",
            "ftp://example.com/file",
        ],
    )
    def test_other_schemes_left_as_text(self, text):
        html = render_text(text)
        assert assert_inert(html) == []
        assert parse(html)[1] == text

    def test_quote_in_url_cannot_break_out_of_href(self):
        html = render_text('https://example.com/"onmouseover="alert(1)')
        [link] = assert_inert(html)  # no onmouseover attribute
        assert link["href"] == 'https://example.com/"onmouseover="alert(1)'

    @pytest.mark.parametrize(
        "text",
        [
            "AT&T",
            "&lt;b&gt;not bold&lt;/b&gt;",
            "a < b > c \" ' &amp;",
            "https://example.com/?q=<x>&y=1",
            "two\nlines",
        ],
    )
    def test_visible_text_is_exactly_what_was_typed(self, text):
        html = render_text(text)
        assert_inert(html)
        assert parse(html)[1] == text


class TestRenderTextThreads:
    """Request threads render at once: nothing they share may be thread-unsafe. A shared
    bleach Linker raised IndexError inside html5lib under 100 concurrent history loads."""

    THREADS = 24
    PER_THREAD = 150

    @staticmethod
    def _texts(thread: int, count: int) -> list[str]:
        return [
            f"<b>{thread}-{i}</b> see https://example.com/{thread}/{i}?q=<x>&y={i} "
            f"and mailto:someone{i}@example.org, not javascript:alert({i}) & AT&T\n"
            + "x"
            * (i % 40)
            for i in range(count)
        ]

    def test_many_threads_render_what_one_thread_renders(self):
        import threading

        from django_support_chat import text

        batches = [self._texts(t, self.PER_THREAD) for t in range(self.THREADS)]
        # Single-threaded reference, past the cache.
        expected = [[text.render_text.__wrapped__(s) for s in batch] for batch in batches]
        text.render_text.cache_clear()
        barrier = threading.Barrier(self.THREADS)
        results: dict[int, list[str]] = {}
        failures: list[BaseException] = []

        def work(index: int) -> None:
            try:
                barrier.wait(timeout=10)
                # Through the cache and past it, both concurrently with the other threads;
                # each twice, so cache hits race with misses of the same text.
                out = []
                for s in batches[index]:
                    out.append(text.render_text(s))
                    assert text.render_text.__wrapped__(s) == out[-1]
                    assert text.render_text(s) == out[-1]
                results[index] = out
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(self.THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert failures == []
        assert [results[i] for i in range(self.THREADS)] == expected

    def test_cache_returns_the_same_rendering(self):
        from django_support_chat import text

        text.render_text.cache_clear()
        first = render_text("hi https://example.com")
        assert render_text("hi https://example.com") is first
        assert text.render_text.cache_info().hits >= 1
