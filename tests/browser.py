"""Open a page in headless Chromium and report what a person would notice, over the DevTools protocol.

Chromium is driven through `--remote-debugging-pipe` (the Chrome DevTools Protocol as
NUL-separated JSON messages on file descriptors 3 and 4, as Puppeteer and Playwright use it),
so no extra package or network port is needed. `inspect_page(path)` loads a file and returns:

  console_errors   console.error/assert calls, uncaught exceptions, and browser log entries
                   at level error (failed loads, Content-Security-Policy violations)
  images           [{src, naturalWidth, naturalHeight, decoded}] for every <img>
  value            what the `expression` evaluated to (JSON), if one was given
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

CHROMIUM = os.environ.get("PREFALIGN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--remote-debugging-pipe"]

IMAGES_JS = """
Promise.all(Array.from(document.images).map(img =>
  img.decode().then(() => true, () => false).then(decoded => ({
    src: img.src.slice(0, 40), naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight, decoded}))))
"""


def available() -> bool:
    return Path(CHROMIUM).exists() and os.access(CHROMIUM, os.X_OK)


class DevTools:
    """A minimal CDP client over Chromium's debugging pipe."""

    def __init__(self, timeout: float = 30.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="prefalign-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # The protocol wants the pipes on fds 3 (commands in) and 4 (replies out): bash maps them (dash
        # cannot name fds above 9).
        command = f'exec "$0" "$@" 3<&{to_child_r} 4>&{from_child_w}'
        self.process = subprocess.Popen(
            ["/bin/bash", "-c", command, CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            pass_fds=(to_child_r, from_child_w), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_child_r)
        os.close(from_child_w)
        self._next_id = 0
        self._replies: dict[int, queue.Queue] = {}
        self.events: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buffer = b""
        while True:
            chunk = os.read(self._from_child, 65536)
            if not chunk:
                self.events.put(None)
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" in message and message["id"] in self._replies:
                    self._replies[message["id"]].put(message)
                else:
                    self.events.put(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        ident = self._next_id
        replies = self._replies[ident] = queue.Queue()
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._to_child, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise RuntimeError(f"chromium closed its pipe before {method}: {self._stderr_tail()}") from None
        try:
            reply = replies.get(timeout=self.timeout)
        except queue.Empty:
            raise TimeoutError(f"chromium did not answer {method} in {self.timeout} s") from None
        finally:
            self._replies.pop(ident, None)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_for(self, method: str, session: str, seen: list) -> dict:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if event is None:
                raise RuntimeError(f"chromium exited: {self._stderr_tail()}")
            seen.append(event)
            if event.get("method") == method and event.get("sessionId") == session:
                return event
        raise TimeoutError(f"no {method} within {self.timeout} s")

    def _stderr_tail(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        text = self.process.stderr.read().decode(errors="replace")
        # Without a system bus Chromium logs D-Bus failures; they are noise here.
        return "\n".join(line for line in text.splitlines() if "dbus" not in line)[-3000:]

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:  # noqa: BLE001 - closing must not mask the test's own outcome
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_child)
        shutil.rmtree(self.profile, ignore_errors=True)


def errors_in(events: list[dict], session: str) -> list[str]:
    found = []
    for e in events:
        if e.get("sessionId") != session:
            continue
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            found.append("console." + params["type"] + ": " + " ".join(
                str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            found.append("exception: " + details.get("exception", {}).get("description", details.get("text", "")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            found.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip())
    return found


def inspect_page(path: Path, expression: str | None = None, settle: float = 0.5) -> dict:
    """Load `path` (a file) in a fresh headless Chromium; collect errors, images and `expression`'s value."""
    browser = DevTools()
    events: list[dict] = []
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired", session, events)
        images = browser.send("Runtime.evaluate", {"expression": IMAGES_JS, "awaitPromise": True,
                                                   "returnByValue": True}, session=session)["result"]["value"]
        value = None
        if expression:
            value = browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                                 session=session)["result"].get("value")
        time.sleep(settle)  # late console messages and log entries
        while True:
            try:
                event = browser.events.get_nowait()
            except queue.Empty:
                break
            if event is not None:
                events.append(event)
        return {"console_errors": errors_in(events, session), "images": images, "value": value}
    finally:
        browser.close()
