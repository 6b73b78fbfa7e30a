"""Translation data and scoring: placeholders as markers, the split by unique source, chrF, the
translation memory (train/data_translate.py, train/translate_eval.py, runtime/apps/translate.py)."""

from __future__ import annotations

import pytest

from edgernn.runtime.apps.translate import EOS, decode_target, encode_source, from_markers, to_markers
from edgernn.train.data_translate import load_pairs, normalise_pair, split_key
from edgernn.train.translate_eval import TranslationMemory, chrf


def test_placeholders_become_markers_and_come_back() -> None:
    src = "Delete %(count)d %(name)s? {0} of %s and %s, 100%%"
    marked, places = to_markers(src)
    assert marked is not None and "%(" not in marked and "{0}" not in marked
    assert marked.endswith("100%%")  # %% is text, not a placeholder
    assert len(places) == 5  # the two unnamed %s are two arguments, two markers
    assert from_markers(marked, places) == src
    # the translation gets the source's markers, in its own order
    target, other = to_markers("%s und %s: {0} von %(name)s löschen (%(count)d)?", places)
    assert other == places and target is not None
    assert from_markers(target, places) == "%s und %s: {0} von %(name)s löschen (%(count)d)?"
    assert sorted(target) != sorted(to_markers("x", ())[0] or "")  # markers, not spellings
    assert to_markers("already \ue000 marked") == (None, ())


def test_a_translation_with_a_placeholder_the_source_lacks_is_left_out() -> None:
    assert normalise_pair("Delete %(name)s", "%(name)s löschen") is not None
    assert normalise_pair("Delete %(name)s", "%(other)s löschen") is None
    assert normalise_pair("Same", "Same") is None  # untranslated
    assert normalise_pair("two\nlines", "zwei\nZeilen") is None


def test_split_key_ignores_case_spacing_and_placeholders() -> None:
    assert split_key("Delete  %(name)s") == split_key("delete {0}") == split_key("DELETE %s")
    assert split_key("Delete file") != split_key("Delete files")


def test_split_key_takes_a_source_to_markers_refuses() -> None:
    # to_markers gives None for these (marker characters already in the text; over 32 placeholders):
    # split_key used to iterate that None (TypeError); the key is then made from the text itself
    assert split_key("\ue000 Delete  FILE") == split_key("delete file")
    many = " ".join(f"%(p{i})s" for i in range(40))
    assert split_key(many) == many


def test_django_german_pairs_are_split_by_unique_source() -> None:
    data = load_pairs("de", ("django",))
    print(f"Django en->de: {len(data.train)} training pairs, {len(data.test)} held out")
    assert len(data.train) > 400 and len(data.test) > 10
    train_keys = {split_key(e.raw_source) for e in data.train}
    assert not train_keys & {split_key(e.raw_source) for e in data.test}
    assert len({split_key(e.raw_source) for e in data.test}) == len(data.test)  # one pair per unique source
    assert data.counts["django"] >= len(data.train) + len(data.test)  # test keeps one translation per source


def test_source_and_target_tokens_round_trip() -> None:
    vocab = "abcdeäö\ue000"
    ids = encode_source(vocab, "bad?ä")
    assert ids[-1] == EOS and ids[3] == 2  # '?' is outside the vocabulary: UNK
    assert decode_target(vocab, [*encode_source(vocab, "äbc\ue000")[:-1], EOS, 5]) == "äbc\ue000"


def test_chrf_against_hand_computed_values() -> None:
    assert chrf(["abc"], ["abc"]) == pytest.approx(100.0)
    assert chrf(["xyz"], ["abc"]) == 0.0
    # "ab" vs "abc": order 1 P 1 R 2/3, order 2 P 1 R 1/2; the hypothesis has no 3-gram, so the effective
    # order is 2: the mean of F_beta=2 over orders 1 and 2
    f1, f2 = 5 * (2 / 3) / (4 + 2 / 3), 5 * (1 / 2) / (4 + 1 / 2)
    assert chrf(["ab"], ["abc"]) == pytest.approx(100 * (f1 + f2) / 2)

    # corpus level: n-gram counts are summed over the sentences before the scores
    def f(r: float) -> float:  # precision 1
        return 5 * r / (4 + r)

    assert chrf(["abc", "ab"], ["abc", "abc"]) == pytest.approx(100 * (f(5 / 6) + f(3 / 4) + f(1 / 2)) / 3)
    assert chrf(["a b c"], ["abc"]) == pytest.approx(100.0)  # whitespace is not scored
    with pytest.raises(ValueError):
        chrf(["a"], [])


def test_translation_memory_returns_the_nearest_sources_translation() -> None:
    tm = TranslationMemory(
        ["Delete file", "Open folder", "Close window"], ["Datei löschen", "Ordner öffnen", "Fenster"]
    )
    assert tm.translate("delete files") == "Datei löschen"
    assert tm.translate("Open the folder") == "Ordner öffnen"


def _dice(a: str, b: str) -> float:
    """3-gram Dice written out again (sets of the padded lower-cased strings), for checking the memory."""
    ga, gb = ({f" {s.lower()} "[i : i + 3] for i in range(len(s))} for s in (a, b))
    return 2 * len(ga & gb) / (len(ga) + len(gb))


def test_memory_lookup_is_the_nearest_by_dice_and_training_suggestions_skip_the_own_split_key() -> None:
    from edgernn.runtime.apps.translate_memory import TranslationMemory as RuntimeMemory
    from edgernn.train.translate_eval import memory_of, train_suggestions

    assert TranslationMemory is RuntimeMemory  # the baseline and the app run one lookup
    data = load_pairs("de", ("django",))
    tm = memory_of(data)
    sources = [e.source for e in data.train]
    for e in data.test[:25]:
        best = max(range(len(sources)), key=lambda i: (_dice(e.source, sources[i]), -i))  # ties: the first
        assert tm.nearest(e.source) == best, e.source
    suggestions = train_suggestions(tm, data)
    keys = [split_key(e.raw_source) for e in data.train]
    for j in range(0, len(data.train), max(1, len(data.train) // 25)):
        allowed = [i for i in range(len(sources)) if keys[i] != keys[j]]
        best = max(allowed, key=lambda i: (_dice(sources[j], sources[i]), -i))
        assert suggestions[j] == best and keys[suggestions[j]] != keys[j]
