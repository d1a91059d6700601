"""The report in a real headless browser (Debian's chromium), driven over the DevTools protocol.

`inspect_page` opens an HTML file, waits for the load event and returns what a reader would meet:
every image with its decoded size, the text of every table section, and every console error,
uncaught exception or failed resource load. It talks to chromium through --remote-debugging-pipe
(NUL-separated JSON on file descriptors 3 and 4), so no driver or websocket package is needed.
The smoke workflow test reuses it on the real report.
"""

from __future__ import annotations

import csv
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from febm.reporting.render import ReportInputs, format_number, render_report
from tests.test_report_render import PAPER, TEMPLATES, smoke_config, write_inputs

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
PAGE_FACTS = """JSON.stringify({
  title: document.title,
  images: Array.from(document.images).map(image => ({
    alt: image.alt, complete: image.complete, width: image.naturalWidth, height: image.naturalHeight})),
  sections: Object.fromEntries(Array.from(document.querySelectorAll("section[id]")).map(
    section => [section.id, section.innerText])),
})"""


@dataclass
class PageInspection:
    title: str
    images: list[dict]
    sections: dict[str, str]
    errors: list[str] = field(default_factory=list)

    @property
    def broken_images(self) -> list[dict]:
        return [image for image in self.images if not image["complete"] or image["width"] == 0]


class DevToolsPipe:
    """A minimal Chrome DevTools Protocol client over --remote-debugging-pipe."""

    def __init__(self, browser: str, profile_dir: str):
        self._to_browser_read, self._to_browser = os.pipe()
        self._from_browser, self._from_browser_write = os.pipe()

        def map_pipes_to_fds_3_and_4() -> None:
            os.dup2(self._to_browser_read, 3)
            os.dup2(self._from_browser_write, 4)

        self.process = subprocess.Popen(
            [
                browser,
                "--headless",
                "--no-sandbox",  # CI runs as root
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile_dir}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,
            preexec_fn=map_pipes_to_fds_3_and_4,
            start_new_session=True,  # its own process group: close() stops its helper processes too
        )
        os.close(self._to_browser_read)
        os.close(self._from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def send(
        self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30
    ) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        reply = self._wait(lambda item: item.get("id") == self._next_id, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_for_event(self, method: str, timeout: float = 30) -> dict:
        return self._wait(lambda item: item.get("method") == method, timeout)

    def _wait(self, wanted, timeout: float) -> dict:
        for index, event in enumerate(self.events):
            if wanted(event):
                return self.events.pop(index)
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                item = json.loads(raw)
                if wanted(item):
                    return item
                self.events.append(item)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._from_browser], [], [], remaining)[0]:
                raise TimeoutError("the browser did not answer in time")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("the browser closed the DevTools pipe")
            self._buffer += chunk

    def drain(self, seconds: float) -> None:
        """Collect events that arrive within `seconds` (late errors after the load event)."""
        try:
            self._wait(lambda item: False, seconds)
        except TimeoutError:
            pass

    def close(self) -> None:
        os.close(self._to_browser)
        os.close(self._from_browser)
        # Chromium's helpers (renderer, crash handler) outlive the main process for a moment and keep writing
        # to the profile directory, which then cannot be removed: stop the whole group and wait for it.
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self._group_alive():
            time.sleep(0.05)
        self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True


def find_browser() -> str:
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    raise AssertionError(
        "no chromium found: `make test` installs Debian's chromium when run as root; "
        "otherwise run `apt-get install -y chromium`"
    )


def error_messages(events: list[dict]) -> list[str]:
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(
                "console: "
                + " ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"])
            )
        elif method == "Runtime.exceptionThrown":
            errors.append("exception: " + params["exceptionDetails"].get("text", ""))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append("log: " + params["entry"]["text"])
        elif method == "Network.loadingFailed":
            errors.append("network: " + params.get("errorText", ""))
    return errors


def inspect_page(html: Path) -> PageInspection:
    with tempfile.TemporaryDirectory() as profile_dir:
        browser = DevToolsPipe(find_browser(), profile_dir)
        try:
            target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
                "sessionId"
            ]
            for domain in ("Runtime", "Log", "Page", "Network"):
                browser.send(f"{domain}.enable", session=session)
            browser.send("Page.navigate", {"url": html.resolve().as_uri()}, session=session)
            browser.wait_for_event("Page.loadEventFired")
            browser.drain(0.5)
            facts = browser.send(
                "Runtime.evaluate", {"expression": PAGE_FACTS, "returnByValue": True}, session=session
            )
        finally:
            browser.close()
    page = json.loads(facts["result"]["value"])
    return PageInspection(page["title"], page["images"], page["sections"], error_messages(browser.events))


def paper_numbers(table: int) -> list[str]:
    """The paper's values of one table as the report formats them."""
    with PAPER.open(newline="") as handle:
        return [
            format_number(float(row["value"]), row["metric"])
            for row in csv.DictReader(handle)
            if row["table"] == f"table{table}"
        ]


def assert_report_reads_well(page: PageInspection, figures: int) -> None:
    """Every figure loads, no console errors, Tables 1, 2 and 5 carry all of the paper's numbers."""
    assert page.errors == []
    assert len(page.images) >= figures
    assert page.broken_images == []
    for table in (1, 2, 5):
        text = page.sections[f"table{table}"]
        missing = [number for number in paper_numbers(table) if number not in text]
        assert missing == [], f"Table {table} lacks the paper's {missing}"
        assert re.search(r"Paper", text)


def test_synthetic_report_loads_cleanly_in_chromium(tmp_path):
    files = write_inputs(tmp_path)
    out = tmp_path / "results" / "report" / "index.html"
    render_report(ReportInputs(config=smoke_config(), templates=TEMPLATES, paper=PAPER, out=out, **files))
    page = inspect_page(out)
    assert_report_reads_well(page, figures=len(files["figures"]) + len(files["samples"]))
    assert "f-EBM" in page.title
    assert "not run" in page.sections["table2"]  # CelebA was not run in these inputs


def test_inspection_catches_a_broken_image_and_a_console_error(tmp_path):
    # Negative control: the check above must be able to fail.
    page_file = tmp_path / "broken.html"
    page_file.write_text(
        "<!doctype html><html><head><title>t</title></head><body>"
        '<img alt="gone" src="missing.png"><script>console.error("boom")</script></body></html>'
    )
    page = inspect_page(page_file)
    assert [image["alt"] for image in page.broken_images] == ["gone"]
    assert any("boom" in error for error in page.errors)
    assert any("missing.png" in error or "ERR_FILE_NOT_FOUND" in error for error in page.errors)
