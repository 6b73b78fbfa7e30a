"""A minimal headless-Chromium driver over the DevTools protocol on a pipe (no WebDriver needed).

``--remote-debugging-pipe`` makes Chromium read commands on fd 3 and write replies on fd 4,
each a JSON message ended by a NUL byte. Unlike ``--dump-dom --virtual-time-budget``, the page
runs in real time, so ``performance.now()`` measures.

    with Browser() as b:
        page = b.open("http://127.0.0.1:8000/parity.html")
        b.wait(page, "document.title === 'done'")
        text = b.eval(page, "document.getElementById('out').textContent")
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from typing import Any

from edgernn.runtime.errors import EdgeRNNError


class BrowserError(EdgeRNNError):
    """Chromium is missing, died, or a page did not get where it was asked to."""


class Browser:
    def __init__(self, executable: str | None = None, extra: tuple[str, ...] = ()) -> None:
        exe = executable or shutil.which("chromium") or shutil.which("chromium-browser")
        if exe is None:
            raise BrowserError("no chromium on PATH: apt-get install chromium")
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()

        def fds() -> None:  # in the child: the two pipe ends become fds 3 and 4, inherited by exec
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome_r, from_chrome_w)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        args = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-pipe",
                *extra, "about:blank"]  # fmt: skip
        self.proc = subprocess.Popen(args, close_fds=False, preexec_fn=fds,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._id, self._buf = 0, b""

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except BrowserError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._w, self._r):
            try:
                os.close(fd)
            except OSError:
                pass

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 60.0) -> dict[str, Any]:  # fmt: skip
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        try:
            os.write(self._w, json.dumps(msg).encode() + b"\0")
        except OSError as exc:
            raise BrowserError(f"chromium is gone ({exc})") from None
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise BrowserError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
            if time.monotonic() > deadline:
                raise BrowserError(f"{method}: no answer in {timeout:.0f} s")
            chunk = os.read(self._r, 1 << 16)
            if not chunk:
                raise BrowserError(f"{method}: chromium closed the pipe")
            self._buf += chunk

    def open(self, url: str) -> str:
        """A new page at ``url``; its session id."""
        target = self.send("Target.createTarget", {"url": url})["targetId"]
        return str(self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"])

    def close_page(self, session: str) -> None:
        self.send("Page.close", {}, session)

    def eval(self, session: str, expression: str) -> Any:
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        return res.get("result", {}).get("value")

    def wait(self, session: str, condition: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.eval(session, f"Boolean({condition})"):
                    return
            except BrowserError as exc:  # the page's context does not exist until it starts loading
                if "execution context" not in str(exc):
                    raise
            if time.monotonic() > deadline:
                raise BrowserError(f"the page did not reach {condition!r} in {timeout:.0f} s")
            time.sleep(0.1)

    def screenshot(self, session: str, path: str) -> None:
        import base64

        data = self.send("Page.captureScreenshot", {"format": "png"}, session)["data"]
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(data))
