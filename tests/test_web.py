"""The browser engine in a real headless Chromium: JS == Python over carried steps, snapshots both
ways, typed errors that keep the state, and the language-ID page's answer equal to the Python app's."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgernn.runtime import Engine

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MODELS = Path(__file__).resolve().parents[1] / "runtime" / "models"
STEPS = 500
SHOTS = Path("build/web-screenshots")  # written for review (make web-test)
SHOTS.mkdir(parents=True, exist_ok=True)


def _page(url: str, done: str, read: str, screenshot: Path) -> str:
    """Open ``url`` in headless Chromium (DevTools protocol over a pipe), wait for ``done``, return ``read``."""
    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium (apt-get install chromium; make web-test installs it)")
    from edgernn.web.driver import Browser

    with Browser(CHROMIUM) as b:
        page = b.open(url)
        b.wait(page, done)
        b.screenshot(page, str(screenshot))
        return str(b.eval(page, read))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from edgernn.web.site import WebError, build_site, ort_dir, serve

    try:
        ort_dir()
    except WebError as exc:
        pytest.skip(str(exc))
    root = tmp_path_factory.mktemp("site")
    build_site(MODELS / "textgen.onnx", root)
    server = serve(root)
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_page_streams_like_python_and_snapshots_cross_both_ways(site: tuple, tmp_path: Path) -> None:
    root, url = site
    engine = Engine.load(root / "model.onnx")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, engine.vocab_size or 1, size=STEPS).tolist()
    py = engine.stream()
    want = np.stack([py.step(np.int64(f)) for f in frames])
    s = engine.stream()
    s.push(np.array(frames[:100]))
    blob = s.snapshot()
    after = frames[100:150]
    py_after = np.stack([s.step(np.int64(f)) for f in after])
    inputs = {"frames": frames, "chunk": 64, "snapshot_at": 250, "python_snapshot": base64.b64encode(blob).decode(),
              "after_python": after, "bad": 10**6}  # fmt: skip
    (root / "inputs.json").write_text(json.dumps(inputs))
    text = _page(f"{url}/parity.html", "['done', 'error'].includes(document.title)",
                 "document.getElementById('out').textContent", SHOTS / "parity.png")  # fmt: skip
    got = json.loads(text)
    assert "error" not in got, got.get("error")
    stepped, chunked = np.array(got["stepped"]), np.array(got["chunked"])
    d_step, d_chunk = float(np.abs(stepped - want).max()), float(np.abs(chunked - want).max())
    d_py = float(np.abs(np.array(got["fromPython"]) - py_after).max())
    # the page's snapshot (after 250 steps) restored here continues as the page did
    t = engine.stream()
    t.restore(base64.b64decode(got["snapshot"]))
    cont = np.stack([t.step(np.int64(f)) for f in frames[250:300]])
    d_snap = float(np.abs(cont - stepped[250:300]).max())
    print(f"JS vs Python over {STEPS} carried steps: step {d_step:.2e}, chunks of 64 {d_chunk:.2e}; "
          f"Python snapshot -> page {d_py:.2e}; page snapshot -> Python {d_snap:.2e}; "
          f"page: create {got['createMs']:.0f} ms, step {got['stepMs']:.3f} ms, chunk {got['chunkMs']:.3f} ms")
    assert max(d_step, d_chunk, d_py, d_snap) <= 1e-5
    assert got["badInput"].startswith("InputError: step: token 1000000 is outside the vocabulary") and got["stateKept"]


def test_the_langid_page_answers_as_the_python_app(tmp_path: Path) -> None:
    from edgernn.runtime.apps import load_app
    from edgernn.runtime.apps.langid import LanguageDetector
    from edgernn.web.site import WebError, build_site, ort_dir, serve

    try:
        ort_dir()
    except WebError as exc:
        pytest.skip(str(exc))
    build_site(MODELS / "langid.onnx", tmp_path / "site")
    server = serve(tmp_path / "site")
    try:
        text = "Das ist ein kleines Haus am See"
        det = LanguageDetector(load_app("langid"))
        for ch in text:
            top = det.step(ch)
        port = server.server_address[1]
        title = _page(f"http://127.0.0.1:{port}/langid.html?text={text.replace(' ', '%20')}",
                      "document.title.startsWith('top:')", "document.title", SHOTS / "langid.png")  # fmt: skip
    finally:
        server.shutdown()
    print(f"langid page: {title!r}; Python app: {top[0]}")
    assert title == f"top: {top[0][0]}"
