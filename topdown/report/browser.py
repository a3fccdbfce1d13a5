"""Open a report in headless Chromium (Debian's ``chromium`` + ``chromium-driver``) and check it rendered.

Used by the tests, and by hand: ``python -m topdown.report.browser outputs/synthetic/report.html``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from jsonargparse import ArgumentParser

from ..errors import ConfigError, run_command
from ..options import parse_args

# Flags a root, offline, GPU-less machine needs; without the networking ones Chromium keeps trying to
# reach Google's services and logs refused connections.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


@dataclass
class PageCheck:
    """What the browser saw."""

    images: int
    broken_images: list[str]
    console_errors: list[str]
    sections: list[str]
    screenshot: Path | None
    text: str = field(repr=False, default="")

    @property
    def ok(self) -> bool:
        return not self.broken_images and not self.console_errors


def browser_available() -> bool:
    return bool(shutil.which("chromium") and shutil.which("chromedriver"))


def check_page(html: str | Path, screenshot: str | Path | None = None, width: int = 1366) -> PageCheck:
    """Load ``html`` (a file) in headless Chromium; count images that failed and console errors."""
    from selenium import webdriver  # selenium only for the browser check
    from selenium.webdriver.chrome.service import Service  # selenium only for the browser check

    html = Path(html).resolve()
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="topdown-chromium-")
    opts.add_argument(f"--user-data-dir={profile}")
    opts.add_argument(f"--window-size={width},900")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"))
    try:
        driver.get(html.as_uri())
        driver.execute_script("return document.readyState")
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"
        )
        broken = [alt for alt, complete, w in images if not complete or not w]
        errors = [e["message"] for e in driver.get_log("browser") if e.get("level") in ("SEVERE", "ERROR")]
        sections = driver.execute_script("return Array.from(document.querySelectorAll('section')).map(s => s.id)")
        text = driver.execute_script("return document.body.innerText")
        shot = None
        if screenshot is not None:
            height = driver.execute_script("return document.body.scrollHeight")
            driver.set_window_size(width, min(int(height) + 50, 16000))
            shot = Path(screenshot)
            shot.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(shot))
        return PageCheck(len(images), broken, errors, sections, shot, text)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def run(argv: list[str]) -> int:
    """``python -m topdown.report.browser REPORT.html [--screenshot PNG]``: load the page in headless Chromium and
    print what it saw; exit status 1 when an image is broken or the console shows an error."""
    parser = ArgumentParser(prog="python -m topdown.report.browser", description=run.__doc__, exit_on_error=False)
    parser.add_argument("page", type=str, help="the report's HTML file")
    parser.add_argument("--screenshot", type=str | None, default=None, help="where to save it (default: beside)")
    args = parse_args(parser, argv)
    page = Path(args.page)
    if not page.is_file():
        raise ConfigError(f"{page}: no such report")
    check = check_page(page, args.screenshot or page.with_suffix(".png"))
    print(
        f"{check.images} images, {len(check.broken_images)} broken, {len(check.console_errors)} console errors; "
        f"screenshot {check.screenshot}"
    )
    return 0 if check.ok else 1


if __name__ == "__main__":
    sys.exit(run_command(run))
