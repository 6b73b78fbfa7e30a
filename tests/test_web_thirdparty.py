"""Real third-party models (``make thirdparty``) streamed by the JS engine in headless Chromium,
equal to the Python engine: silero-vad (a 64-sample context window, a 512-sample window with the
remainder buffered, a constant ``sr``, its state's batch axis in the middle: (2, batch, 128)),
GTCRN (three caches, batch axes at 1 and 2, no time axis: one frame per call) and FSMN-VAD (four
caches, a time axis: pushed in chunks). Each: >= 500 carried steps (windows for silero), step and
pushed, snapshots page -> Python and Python -> page, max |diff| <= 1e-5 printed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from webpage import Site, check_case, need_browser

from edgernn.bench.thirdparty_models import MODELS, missing, model_path
from edgernn.runtime import Engine
from edgernn.runtime.infer import infer_spec

pytestmark = pytest.mark.skipif(
    bool(missing()), reason=f"third-party models not fetched ({', '.join(missing())}): run `make thirdparty`"
)
STEPS = 500


def _site(key: str, tmp: Path) -> tuple[Engine, Site]:
    need_browser()
    m = next(x for x in MODELS if x.key == key)
    spec = infer_spec(model_path(key), **m.hints)
    site = Site(model_path(key), tmp, spec=spec)
    return Engine.load(site.root / "model.onnx", spec=spec), site


def _stream_page(site: Site, key: str) -> str:
    """The site's generic page streams 40 calls of noise; what it reports (a screenshot for review)."""
    from webpage import page

    return str(page(site.url("stream.html?calls=40"), "['done', 'error'].includes(document.title)",
                    "document.body.innerText", f"stream-{key}.png"))  # fmt: skip


def _sizes(rng: np.random.Generator, total: int, low: int, high: int) -> list[int]:
    out: list[int] = []
    while sum(out) < total:
        out.append(min(int(rng.integers(low, high)), total - sum(out)))
    return out


def test_silero_vad_context_window_and_buffered_windows(tmp_path: Path) -> None:
    from edgernn.web.parity import Case

    engine, site = _site("silero_vad", tmp_path)
    try:
        rng = np.random.default_rng(0)
        n = STEPS * 512 + 300  # the last 300 samples wait for flush()
        t = np.arange(n) / 16000
        voice = (np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)).astype(np.float32) * 0.3
        items = (voice + rng.normal(0, 0.02, n)).astype(np.float32)
        case = Case(items, steps=STEPS, step_items=512, pushes=_sizes(rng, n, 1, 3000), snapshot_after=37,
                    after_start=5000, after_pushes=[700] * 20)  # fmt: skip
        got = check_case(engine, site, case, "silero_vad")
        shown = _stream_page(site, "silero_vad")
    finally:
        site.close()
    assert got["window"] == 512
    assert got["badInput"].startswith("InputError: step: input 'input' holds NaN"), got["badInput"]
    probs = got["stepped"]
    assert probs.max() - probs.min() > 0.1, "the test signal should move the speech probability"
    assert "40 calls of 512 item(s)" in shown and "40 output rows of 1 values" in shown, shown


@pytest.mark.parametrize("key,shape,pushes", [("gtcrn", (257, 1, 2), [100, 200, 200]),
                                              ("fsmn_vad", (400,), [128, 200, 172])])  # fmt: skip
def test_several_states_stream_like_python(tmp_path: Path, key: str, shape: tuple, pushes: list[int]) -> None:
    from edgernn.web.parity import Case

    engine, site = _site(key, tmp_path)
    try:
        items = np.random.default_rng(1).normal(0, 0.5, (STEPS, *shape)).astype(np.float32)
        case = Case(items, steps=STEPS, step_items=1, pushes=pushes, chunk=64, snapshot_after=1,
                    after_start=50, after_pushes=[30, 40])  # fmt: skip
        got = check_case(engine, site, case, key)
        shown = _stream_page(site, key)
    finally:
        site.close()
    assert len(engine.spec.states) >= 3
    assert "40 calls of 1 item(s)" in shown and "40 output rows" in shown, shown
    assert got["badInput"].startswith(f"InputError: step: input '{engine.input.name}' holds NaN"), got["badInput"]
