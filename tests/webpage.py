"""Helpers for the browser tests: a site served on 127.0.0.1, a page driven in headless Chromium,
and one parity case (web/parity.py) compared between the page and the Python engine."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgernn.runtime import Engine

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path("build/web-screenshots")  # written for review (make web-test)
TOL = 1e-5


def need_browser() -> None:
    """Skip, saying why, without Chromium or onnxruntime-web (make web-test installs both)."""
    from edgernn.web.site import WebError, ort_dir

    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium (apt-get install chromium; make web-test installs it)")
    try:
        ort_dir()
    except WebError as exc:
        pytest.skip(str(exc))


def page(url: str, done: str, read: str, screenshot: str, actions: Any = None) -> Any:
    """Open ``url``, run ``actions(browser, session)`` if given, wait for ``done``, screenshot, return ``read``."""
    from edgernn.web.driver import Browser

    SHOTS.mkdir(parents=True, exist_ok=True)
    with Browser(CHROMIUM) as b:
        session = b.open(url)
        if actions is not None:
            actions(b, session)
        b.wait(session, done)
        b.screenshot(session, str(SHOTS / screenshot))
        return b.eval(session, read)


class Site:
    """``edgernn web MODEL -o root`` and its server; ``url(page)``."""

    def __init__(self, model: Path, root: Path, spec: Any = None) -> None:
        from edgernn.web.site import build_site, serve

        build_site(model, root, spec=spec)
        self.root = root
        self.server = serve(root)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}"

    def close(self) -> None:
        self.server.shutdown()


def check_case(engine: Engine, site: Site, case: Any, name: str) -> dict[str, Any]:
    """The case in the page and in Python: max |diff| of step, push, both snapshot directions (printed)."""
    from edgernn.web.parity import flat_rows, pushes, python_run, read_result, take, write_case

    want = python_run(engine, case)
    py = case.stream(engine)
    py.push(take(case.items, 0, case.after_start), chunk=case.chunk)
    case.python_snapshot = py.snapshot()
    want_after = flat_rows(pushes(py, case.items, case.after_start, case.after_pushes, case.chunk))
    write_case(site.root, case)
    got = read_result(page(site.url("parity.html"), "['done', 'error'].includes(document.title)",
                           "document.getElementById('out').textContent", f"parity-{name}.png"))  # fmt: skip
    # the page's snapshot (after push call snapshot_after) restored here continues as the page did
    t = engine.stream()
    t.restore(got["snapshot"])
    start = sum(case.pushes[: case.snapshot_after])
    cont = flat_rows(pushes(t, case.items, start, case.pushes[case.snapshot_after :], case.chunk))
    page_cont = got["pushed"][got["rowsAtSnapshot"] * got["rowWidth"] :]
    diffs = {}
    for what, a, b in (("step", got["stepped"], want["stepped"]), ("push", got["pushed"], want["pushed"]),
                       ("python->page", got["fromPython"], want_after), ("page->python", page_cont, cont)):  # fmt: skip
        assert a.shape == b.shape, f"{name} {what}: the page gave {a.shape} values, Python {b.shape}"
        diffs[what] = float(np.abs(a - b).max())
    print(
        f"{name}: JS vs Python, {case.steps} steps of {case.step_items} item(s), {len(case.pushes)} pushes "
        f"({want['pushed'].size // got['rowWidth']} rows): max |diff| "
        + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items())
        + f"; page: create {got['createMs']:.0f} ms, step {got['stepMs']:.3f} ms, push {got['pushMs']:.3f} ms"
    )
    assert max(diffs.values()) <= TOL, diffs
    assert got["stateKept"], f"{name}: a refused call changed the page's state"
    assert got["errors"] == [
        "SnapshotError: snapshot is corrupted or truncated (checksum mismatch)",
        "StreamError: step: the stream is closed; create a new one with engine.stream()",
    ], got["errors"]
    got["diffs"] = diffs
    return got
