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


def _python_keyboard(prefix: str, n_more: int) -> dict:
    """What the Python keyboard app says after each key of ``prefix``, and its greedy continuation."""
    from edgernn.runtime.apps import load_app
    from edgernn.runtime.apps.suggest import Keyboard

    kb = Keyboard(load_app("textgen"))
    tops = []
    for ch in prefix:
        kb.type(ch)
        assert kb._logp is not None
        tops.append(kb.vocab[int(np.argmax(kb._logp))])
    words, nxt = kb.suggest(3)
    s, logits = kb.stream.fork(), kb._logp
    more, gaps = "", []
    for _ in range(n_more):
        top2 = np.sort(logits)[-2:]
        gaps.append(float(top2[1] - top2[0]))
        c = int(np.argmax(logits))
        more += kb.vocab[c]
        logits = s.step(c)
    return {"tops": tops, "words": [w.word for w in words], "next": [w.word for w in nxt], "more": more, "gaps": gaps}


def test_the_textgen_page_suggests_as_the_python_keyboard(textgen_site: Site) -> None:
    """Typed key by key (DevTools Input.insertText): after every key the page's top next character is
    the Python app's; then its word completions, next words and greedy continuation are the app's; a
    character the model lacks shows the typed error and keeps the suggestions."""
    import json

    from webpage import page

    prefix = "And God sa"
    want = _python_keyboard(prefix, 60)
    seen: list[dict] = []

    def type_keys(b, session: str) -> None:  # type: ignore[no-untyped-def]
        b.wait(session, "document.title === 'loaded'")
        b.eval(session, "document.getElementById('text').focus()")
        for i, ch in enumerate(prefix):
            b.send("Input.insertText", {"text": ch}, session)
            b.wait(session, f"document.body.dataset.ready === {json.dumps(prefix[: i + 1])}")
            seen.append(json.loads(b.eval(session, "document.body.dataset.result")))
        b.send("Input.insertText", {"text": "#"}, session)

    text = page(textgen_site.url("textgen.html"), "document.title === 'error: InputError'",
                "JSON.stringify([document.body.dataset.result, document.getElementById('err').textContent])",
                "textgen.png", actions=type_keys)  # fmt: skip
    last, err = json.loads(text)
    got = json.loads(last)
    tops = [r["chars"][0]["char"] for r in seen]
    print(f"textgen page after {prefix!r}: next chars {tops}; completions {[w['word'] for w in got['words']]}, "
          f"then {[w['word'] for w in got['next']]}; continuation {got['more']!r}; Python: {want['words']}, "
          f"{want['next']}, {want['more']!r}; '#' -> {err}")  # fmt: skip
    assert [r["text"] for r in seen] == [prefix[: i + 1] for i in range(len(prefix))]
    assert tops == want["tops"]
    assert [w["word"] for w in got["words"]] == want["words"] and want["words"][0] == "said"
    assert [w["word"] for w in got["next"]] == want["next"]
    # greedy text may part only where Python's top two logits (nearly) tie
    j = next((i for i, (a, b) in enumerate(zip(got["more"], want["more"])) if a != b), len(want["more"]))
    assert j == len(want["more"]) or want["gaps"][j] < 1e-4, (j, got["more"], want["more"])
    assert got["text"] == prefix and err.startswith('InputError: typed text: characters ["#"]'), err


def test_the_page_reads_the_spec_from_the_model_bytes(textgen_site: Site) -> None:
    """Without model.json the JS engine reads the spec from the ONNX protobuf (metadata_props)."""
    from webpage import page

    text = str(page(textgen_site.url("stream.html?bytes=1&calls=20"), "['done', 'error'].includes(document.title)",
                    "document.body.innerText", "stream-textgen.png"))  # fmt: skip
    print(text.splitlines()[-8:])
    assert "spec from the model's bytes" in text and "20 output rows of 78 values" in text, text
    assert "state\th → h_out\tfloat32 [1, batch, 256]" in text, text


@pytest.mark.parametrize("name", ["langid", "music", "forecast", "weather"])
def test_every_shipped_model_streams_like_python(tmp_path: Path, name: str) -> None:
    """The other shipped models (tokens: langid, music; frames: forecast, weather) through the same case."""
    from edgernn.web.parity import Case

    need_browser()
    site = Site(MODELS / f"{name}.onnx", tmp_path / "site")
    try:
        engine = Engine.load(site.root / "model.onnx")
        rng = np.random.default_rng(2)
        if engine.tokens:
            items = rng.integers(0, engine.vocab_size or 1, size=STEPS).astype(np.int64)
        else:
            items = rng.normal(0, 1, (STEPS, *engine.frame_shape)).astype(np.float32)
        case = Case(items, steps=STEPS, step_items=1, pushes=[64, 300, 136], chunk=64, snapshot_after=1,
                    after_start=200, after_pushes=[100], bad=10**6 if engine.tokens else "nan")  # fmt: skip
        got = check_case(engine, site, case, name)
    finally:
        site.close()
    assert got["badInput"].startswith("InputError: step: "), got["badInput"]
