"""The browser harness itself: a real headless Chromium must catch what a person would see broken.

The reports are opened with it in test_steps.py (the step chain's report) and
test_workflow.py (the embedded default's report).
"""

import os

import browser
import pytest

needs_chromium = pytest.mark.skipif(
    not browser.available() and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (CI installs it in .ci/run; there this test must run)",
)

PNG_1x1 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


@needs_chromium
def test_a_clean_page_has_no_errors_and_decoded_images(tmp_path):
    page = tmp_path / "ok.html"
    page.write_text(f"<!doctype html><title>ok</title><img src='data:image/png;base64,{PNG_1x1}'>"
                    "<table id=summary-table><tr><td>1</td></tr></table>")
    seen = browser.inspect_page(page, "!!document.querySelector('#summary-table')")
    assert seen["console_errors"] == []
    assert [i["naturalWidth"] for i in seen["images"]] == [1] and seen["images"][0]["decoded"]
    assert seen["value"] is True


@needs_chromium
def test_broken_images_console_errors_and_exceptions_are_caught(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<!doctype html><title>bad</title><img src='data:image/png;base64,bm90IGEgcG5n'>"
                    "<script>console.error('boom'); undefinedFunction();</script>")
    seen = browser.inspect_page(page, "!!document.querySelector('#summary-table')")
    assert any("boom" in e for e in seen["console_errors"])
    assert any("undefinedFunction" in e for e in seen["console_errors"])
    assert seen["images"][0]["naturalWidth"] == 0 and not seen["images"][0]["decoded"]
    assert seen["value"] is False
