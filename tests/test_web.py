"""The browser engine in a real headless Chromium on the shipped models: JS == Python over carried
steps (step and pushed in chunks), snapshots both ways, typed errors that keep the state, and the
app pages (language ID, text generation with suggestions) answering as the Python apps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from webpage import Site, check_case, need_browser

from edgernn.runtime import Engine

MODELS = Path(__file__).resolve().parents[1] / "runtime" / "models"
STEPS = 500


@pytest.fixture(scope="module")
def textgen_site(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    need_browser()
    site = Site(MODELS / "textgen.onnx", tmp_path_factory.mktemp("textgen"))
    yield site
    site.close()


def test_the_page_streams_like_python_and_snapshots_cross_both_ways(textgen_site: Site) -> None:
    from edgernn.web.parity import Case

    engine = Engine.load(textgen_site.root / "model.onnx")
    items = np.random.default_rng(0).integers(0, engine.vocab_size or 1, size=STEPS).astype(np.int64)
    case = Case(items, steps=STEPS, step_items=1, pushes=[100, 150, 250], chunk=64, snapshot_after=2,
                after_start=100, after_pushes=[50, 30], bad=10**6)  # fmt: skip
    got = check_case(engine, textgen_site, case, "textgen")
    assert got["badInput"].startswith("InputError: step: token 1000000 is outside the vocabulary"), got["badInput"]


def test_the_langid_page_answers_as_the_python_app(tmp_path: Path) -> None:
    from webpage import page

    from edgernn.runtime.apps import load_app
    from edgernn.runtime.apps.langid import LanguageDetector

    need_browser()
    site = Site(MODELS / "langid.onnx", tmp_path / "site")
    try:
        text = "Das ist ein kleines Haus am See"
        det = LanguageDetector(load_app("langid"))
        for ch in text:
            top = det.step(ch)
        title = page(site.url(f"langid.html?text={text.replace(' ', '%20')}"), "document.title.startsWith('top:')",
                     "document.title", "langid.png")  # fmt: skip
    finally:
        site.close()
    print(f"langid page: {title!r}; Python app: {top[0]}")
    assert title == f"top: {top[0][0]}"
