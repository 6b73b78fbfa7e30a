"""The translate model end to end on a small real one (trained here for a few updates on Django's
catalogs): export of encoder + decoder step with parity over carried steps, the app on the engine
equal to PyTorch's greedy and beam decoding, batching with padded memory, fork / snapshot, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgernn.cli import main  # noqa: E402
from edgernn.runtime.apps.translate import BOS, Translator  # noqa: E402
from edgernn.runtime.errors import InputError  # noqa: E402

TEXTS = ["Delete %(name)s", "File not found", "Change password", "{0} of %s selected"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    from edgernn.export.pipeline import export_checkpoint
    from edgernn.export.translate import load_seq2seq
    from edgernn.train.tasks import build_task, recipe
    from edgernn.train.trainer import fit

    out = tmp_path_factory.mktemp("translate")
    cfg = recipe("translate", catalogs=("django",), max_seconds=0.0, max_steps=25, hidden_size=32, embed_size=16,
                 batch_size=16, dropout=0.0, log_every=25)  # fmt: skip
    task = build_task(cfg)
    task.evaluate = lambda model, deadline: {}  # an untrained model writes to max_target: scored in its own test
    task.eval_probe = None
    fit(task, cfg, out=out / "run", log=lambda s: None)
    spec, report = export_checkpoint(out / "run", out / "translate.onnx", steps=400)
    print(report.verdict())
    model, _ = load_seq2seq(out / "run")
    return out / "translate.onnx", model


def test_export_writes_two_graphs_and_parity_holds_over_carried_steps(exported: tuple[Path, object]) -> None:
    path, _ = exported
    tr = Translator.load(path)
    assert (path.parent / "translate-encoder.onnx").is_file()
    parity = tr.decoder.spec.provenance["parity"]
    print(parity)
    assert parity["steps"] == 400 and parity["sources"] >= 3
    assert parity["max_abs"] <= 1e-5 and max(parity["max_abs_chunked"].values()) <= 1e-5
    assert set(parity["max_abs_step"]) == {"y", "attn", "h"}
    mem = tr.decoder.spec.memory[0]
    assert mem.name == "memory" and mem.mask == "memory_mask" and mem.max_length == tr.decoder.spec.task["max_source"]
    assert tr.encoder.spec.task["role"] == "encoder" and tr.decoder.spec.version >= 3


def test_the_app_on_the_engine_writes_what_torch_writes(exported: tuple[Path, object]) -> None:
    from edgernn.runtime.apps.translate import to_markers
    from edgernn.train.translate_eval import beam, greedy

    path, model = exported
    tr = Translator.load(path)
    for text in TEXTS:
        marked, places = to_markers(text)
        assert marked is not None
        want = greedy(model, tr.source_vocabulary, tr.target_vocabulary, [marked], tr.max_target)[0]
        got = tr.translate(text)
        assert got == tr_restore(want, places)
        want_beam = beam(model, tr.source_vocabulary, tr.target_vocabulary, marked, tr.max_target, 3)
        assert tr.beam(text, 3) == tr_restore(want_beam, places)


def tr_restore(text: str, places: tuple[str, ...]) -> str:
    from edgernn.runtime.apps.translate import from_markers

    return from_markers(text, places)


def test_batched_decoder_streams_with_different_sources_equal_each_alone(exported: tuple[Path, object]) -> None:
    tr = Translator.load(exported[0])
    memories = [tr.memory(t)[0] for t in ("a", "File not found at all, sorry", "Change password")]
    assert len({m.shape[0] for m in memories}) == 3
    rng = np.random.default_rng(0)
    tokens = np.concatenate([[BOS], rng.integers(3, tr.decoder.spec.model.input_size, 59)])
    alone = []
    for m in memories:
        s = tr.decoder.stream(memory={"memory": m})
        alone.append(np.stack([s.step(int(t)) for t in tokens]))
    batch = tr.decoder.batch(max_streams=4)
    members = [batch.join(tr.decoder.stream(memory={"memory": m})) for m in memories]
    assert len(members) == 3
    together = np.stack([batch.step(np.full(3, t)) for t in tokens], axis=1)  # (members, steps, vocab)
    diff = max(float(np.abs(together[i] - alone[i]).max()) for i in range(3))
    print(f"batched (padded memory, mask) vs alone over {len(tokens)} steps: max |diff| {diff:.3g}")
    assert diff <= 1e-5


def test_fork_and_snapshot_carry_the_source(exported: tuple[Path, object]) -> None:
    tr = Translator.load(exported[0])
    stream, _ = tr.stream("Delete file")
    for t in (BOS, 5, 6):
        stream.step(t)
    fork = stream.fork()
    blob = stream.snapshot()
    a = [stream.step(t) for t in (7, 8, 9)]
    b = [fork.step(t) for t in (7, 8, 9)]
    other, _ = tr.stream("Something else entirely")
    other.restore(blob)
    c = [other.step(t) for t in (7, 8, 9)]
    assert np.array_equal(np.stack(a), np.stack(b)) and np.array_equal(np.stack(a), np.stack(c))


def test_bad_input_is_typed_names_the_tensor_and_leaves_the_stream_as_it_was(exported: tuple[Path, object]) -> None:
    tr = Translator.load(exported[0])
    limit = tr.memory_spec.max_length
    with pytest.raises(InputError, match=r"memory 'memory'.*max_length"):
        tr.memory("x" * (limit or 1))  # + EOS: one token too long
    stream, _ = tr.stream("Delete file")
    stream.step(BOS)
    before_state, before_memory = stream.state()["h"].copy(), stream.memory["memory"].copy()
    hidden = before_memory.shape[1]
    for bad in (np.zeros((4, hidden + 1), np.float32), np.zeros((limit + 1, hidden), np.float32),
                np.zeros((1, 4, hidden), np.float32)):  # fmt: skip
        with pytest.raises(InputError, match="memory"):
            stream.set_memory({"memory": bad})
        assert np.array_equal(stream.state()["h"], before_state)
        assert np.array_equal(stream.memory["memory"], before_memory)
    with pytest.raises(InputError, match=r"target language 'fr'.*en -> de"):
        tr.check_target("fr")
    tr.check_target("de")


def test_run_translate_streams_lines_and_refuses_bad_input_without_traceback(
    exported: tuple[Path, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = exported[0]
    tr = Translator.load(path)
    src = tmp_path / "in.txt"
    src.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    assert main(["run", "translate", "--model", str(path), "--input", str(src)]) == 0
    assert capsys.readouterr().out.splitlines() == [tr.translate(t) for t in TEXTS]
    assert main(["run", "translate", "--model", str(path), "--input", str(src), "--beam", "3"]) == 0
    assert capsys.readouterr().out.splitlines() == [tr.beam(t, 3) for t in TEXTS]
    for argv, says in (
        (["--to", "fr", "--input", str(src)], "target language 'fr'"),
        (["--input", str(_write(tmp_path / "long.txt", "y" * 500))], "memory 'memory'"),
    ):
        code = main(["run", "translate", "--model", str(path), *argv])
        err = capsys.readouterr().err
        assert code != 0 and "Traceback" not in err and says in err, err


def _write(path: Path, text: str) -> Path:
    path.write_text(text + "\n", encoding="utf-8")
    return path


def test_evaluation_scores_greedy_beam_and_the_baselines_on_the_same_pairs(exported: tuple[Path, object]) -> None:
    from dataclasses import replace

    from edgernn.train.data_translate import load_pairs
    from edgernn.train.translate import translate_facts, vocabulary
    from edgernn.train.translate_eval import baseline_scores, evaluate

    _, model = exported
    data = load_pairs("de", ("django",))
    data = replace(data, test=data.test[:4])
    src_vocab, tgt_vocab = vocabulary([e.source for e in data.train]), vocabulary([e.target for e in data.train])
    facts = translate_facts(data, src_vocab, tgt_vocab, model.cfg)
    facts["max_target"] = 12  # bounded: the model is barely trained
    m = evaluate(model, data, facts, baseline_scores(data))
    assert m["test_pairs"] == 4 and m["beam_pairs"] == 4
    for key in ("chrf_greedy", "chrf_beam", "chrf_memory", "chrf_copy", "chrf_greedy_beam_pairs"):
        assert 0.0 <= m[key] <= 100.0
    assert m["chrf_memory_beam_pairs"] == m["chrf_memory"]  # every pair is in the beam subset here


@pytest.fixture(scope="module")
def exported_tm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A TM-augmented model (``tm = true``): the encoder reads source + separator + the memory's suggestion."""
    from edgernn.export.pipeline import export_checkpoint
    from edgernn.export.translate import load_seq2seq
    from edgernn.train.tasks import build_task, recipe
    from edgernn.train.trainer import fit

    out = tmp_path_factory.mktemp("translate-tm")
    cfg = recipe("translate", catalogs=("django",), tm=True, max_seconds=0.0, max_steps=20, hidden_size=32,
                 embed_size=16, batch_size=16, dropout=0.0, log_every=20)  # fmt: skip
    task = build_task(cfg)
    task.evaluate = lambda model, deadline: {}
    task.eval_probe = None
    fit(task, cfg, out=out / "run", log=lambda s: None)
    spec, report = export_checkpoint(out / "run", out / "translate.onnx", steps=300)
    print(report.verdict())
    model, _ = load_seq2seq(out / "run")
    return out / "translate.onnx", model


def test_a_tm_model_ships_its_memory_and_the_app_reads_what_training_reads(exported_tm: tuple[Path, object]) -> None:
    from edgernn.runtime.apps.translate_memory import SEPARATOR
    from edgernn.train.data_translate import load_pairs
    from edgernn.train.translate_eval import greedy, memory_of, test_inputs

    path, model = exported_tm
    tr = Translator.load(path)
    facts = tr.decoder.spec.task
    assert facts["tm"] and facts["translation_memory"] == "translate-memory.json.gz"
    assert (path.parent / "translate-memory.json.gz").is_file() and tr.tm is not None
    assert tr.decoder.spec.provenance["parity"]["max_abs"] <= 1e-5
    assert SEPARATOR in tr.source_vocabulary and tr.memory_spec.max_length == facts["max_source"] > 101
    data = load_pairs("de", ("django",))
    assert tr.tm.digest() == memory_of(data).digest()
    inputs, similarity = test_inputs(data, dict(facts), memory_of(data))
    for j in range(0, len(data.test), max(1, len(data.test) // 6)):
        marked, places = tr.encoder_input(data.test[j].raw_source)
        assert marked == inputs[j] and marked.split(SEPARATOR)[0] == data.test[j].source
        want = greedy(model, tr.source_vocabulary, tr.target_vocabulary, [inputs[j]], tr.max_target)[0]
        assert tr.translate(data.test[j].raw_source) == tr_restore(want, places)
    assert 0.0 < float(similarity.mean()) <= 1.0
    with pytest.raises(InputError, match="reserved"):
        tr.memory(f"a{SEPARATOR}b")


def test_a_tm_model_without_its_memory_file_is_refused_naming_the_file(
    exported_tm: tuple[Path, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    path = exported_tm[0]
    for name in ("translate.onnx", "translate-encoder.onnx"):
        shutil.copy(path.parent / name, tmp_path / name)
    src = _write(tmp_path / "in.txt", "File not found")
    code = main(["run", "translate", "--model", str(tmp_path / "translate.onnx"), "--input", str(src)])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and "translate-memory.json.gz" in err and "missing" in err, err
    (tmp_path / "translate-memory.json.gz").write_bytes(b"\x1f\x8b not gzip")
    code = main(["run", "translate", "--model", str(tmp_path / "translate.onnx"), "--input", str(src)])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and "translate-memory.json.gz" in err, err
