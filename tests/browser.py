"""Render a local HTML page in headless Chromium (Debian's ``chromium``) through the DevTools
protocol over a pipe (``--remote-debugging-pipe``: no port, no network), collecting console
errors, uncaught exceptions and the browser's own error log entries, and a full-page screenshot.

The protocol's messages are JSON terminated by NUL; Chromium reads commands on fd 3 and writes
replies and events on fd 4.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class RenderedPage:
    screenshot: Path
    console_errors: list[str] = field(default_factory=list)
    page: dict[str, Any] = field(default_factory=dict)  # what PAGE_PROBE returned


# Evaluated in the page after load: whether every image decoded, and what the page holds.
PAGE_PROBE = """JSON.stringify({
  images: document.images.length,
  broken_images: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length,
  audio: document.querySelectorAll('audio').length,
  ogg_playable: document.createElement('audio').canPlayType('audio/ogg; codecs=vorbis'),
  height: document.documentElement.scrollHeight,
  text: document.body.innerText.length
})"""


class _Pipe:
    def __init__(self, write_fd: int, read_fd: int):
        self._write = os.fdopen(write_fd, "wb", buffering=0)
        self._read = os.fdopen(read_fd, "rb", buffering=0)
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self._next_id = 0
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self) -> None:
        buf = b""
        while True:
            chunk = self._read.read(65536)
            if not chunk:
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                self.messages.put(json.loads(raw))

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._write.write(json.dumps(msg).encode() + b"\0")
        return self._next_id


def render(html_path: Path, screenshot: Path, *, width: int = 1300, timeout: float = 90.0) -> RenderedPage:
    """Load html_path (file://), wait for the load event and a short settle, then screenshot the
    whole page. Console errors, exceptions and error log entries are collected throughout."""
    binary = chromium()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="disco-chromium-")
    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()
    # Above 4, so the redirections below cannot overwrite one another.
    to_chrome_r, from_chrome_w = _above(to_chrome_r, 10), _above(from_chrome_w, 11)
    # fd 3 and 4 in the browser, whatever numbers the pipes got here.
    cmd = [
        "bash",
        "-c",
        f'exec "$@" 3<&{to_chrome_r} 4>&{from_chrome_w} {to_chrome_r}<&- {from_chrome_w}>&-',
        "chromium",
        binary,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={width},900",
        "about:blank",
    ]
    proc = subprocess.Popen(
        cmd, pass_fds=(to_chrome_r, from_chrome_w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    os.close(to_chrome_r)
    os.close(from_chrome_w)
    pipe = _Pipe(to_chrome_w, from_chrome_r)
    errors: list[str] = []
    deadline = time.monotonic() + timeout

    def wait(predicate) -> dict[str, Any]:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"chromium did not answer within {timeout} s rendering {html_path}")
            try:
                msg = pipe.messages.get(timeout=min(left, 1.0))
            except queue.Empty:
                if proc.poll() is not None:
                    raise RuntimeError(f"chromium exited with {proc.returncode}") from None
                continue
            _collect(msg, errors)
            if predicate(msg):
                if "error" in msg:
                    raise RuntimeError(f"DevTools error: {msg['error']}")
                return msg

    def call(method: str, params: dict | None = None, session: str | None = None) -> dict[str, Any]:
        mid = pipe.send(method, params, session)
        return wait(lambda m: m.get("id") == mid).get("result", {})

    try:
        target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            call(f"{domain}.enable", session=session)
        call("Page.navigate", {"url": html_path.resolve().as_uri()}, session)
        wait(lambda m: m.get("method") == "Page.loadEventFired")
        time.sleep(0.5)  # late console messages
        probe = call("Runtime.evaluate", {"expression": PAGE_PROBE, "returnByValue": True}, session)
        page = json.loads(probe["result"]["value"])
        metrics = call("Page.getLayoutMetrics", session=session)["cssContentSize"]
        shot = call(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": metrics["width"], "height": metrics["height"], "scale": 1},
            },
            session,
        )
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        # Drain what arrived meanwhile.
        while not pipe.messages.empty():
            _collect(pipe.messages.get_nowait(), errors)
        try:
            pipe.send("Browser.close")
        except OSError:
            pass
    finally:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
    return RenderedPage(screenshot, errors, page)


def _above(fd: int, minimum: int) -> int:
    new = os.dup2(fd, max(fd, minimum)) if fd < minimum else fd
    if new != fd:
        os.close(fd)
    return new


def _collect(msg: dict[str, Any], errors: list[str]) -> None:
    method, params = msg.get("method"), msg.get("params") or {}
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        errors.append(
            "console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
        )
    elif method == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails") or {}
        errors.append("exception: " + str((details.get("exception") or {}).get("description") or details))
    elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        entry = params["entry"]
        errors.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip())
