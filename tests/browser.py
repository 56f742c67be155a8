"""A real browser for the report pages: Debian's Chromium, driven by playwright.

`make test` installs Chromium (the Makefile); run by hand without it, the
browser tests are skipped and say how to get it. Each call has its deadline:
playwright's own timeouts, on the launch and on the page's load.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Screenshots the tests keep, for a person to look at after a CI run.
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
DEADLINE_MS = 60_000


@dataclass
class Seen:
    """What a person would see of a page."""

    text: str
    images: list[dict]  # each <img>: alt, whether it loaded, its decoded width
    charts: int  # <svg> elements drawn
    broken: list[str] = field(default_factory=list)  # console errors, failed or outside loads

    def unloaded_images(self) -> list[str]:
        return [image["alt"] for image in self.images if not image["loaded"]]


def look_at(page_file: str, screenshot: str | None = None) -> Seen:
    """Opens the file in headless Chromium; takes a full-page screenshot if asked."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}: `make test` installs it (Debian's chromium)")
    from playwright.sync_api import sync_playwright

    broken: list[str] = []
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox"], timeout=DEADLINE_MS
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("console", lambda m: broken.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: broken.append(str(error)))
            page.on("requestfailed", lambda request: broken.append(f"failed: {request.url}"))
            page.on(
                "request",
                lambda request: (
                    None
                    if request.url.startswith(("data:", "file:"))
                    else broken.append(f"fetched from outside the page: {request.url}")
                ),
            )
            page.goto(Path(page_file).resolve().as_uri(), wait_until="load", timeout=DEADLINE_MS)
            images = page.evaluate(
                "[...document.images].map(i => "
                "({alt: i.alt, loaded: i.complete && i.naturalWidth > 0, width: i.naturalWidth}))"
            )
            seen = Seen(page.inner_text("body"), images, page.locator("svg").count(), broken)
            if screenshot:
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
        finally:
            browser.close()
    return seen
