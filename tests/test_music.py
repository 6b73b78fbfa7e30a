"""Music: the event encoding, MIDI written and read back, tune split, a trained model streamed, audio."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgernn.runtime.errors import InputError
from edgernn.runtime.music import Event, seconds, vocabulary, write_midi


def test_midi_round_trips_through_music21(tmp_path: Path) -> None:
    music21 = pytest.importorskip("music21")
    events = [Event(67, 1.0), Event(69, 0.5), Event(None, 0.5), Event(71, 2.0), Event(60, 0.25)]
    path = write_midi(events, tmp_path / "m.mid", bpm=90)
    score = music21.converter.parse(path)
    notes = [(n.pitch.midi, float(n.quarterLength), float(n.offset)) for n in score.flatten().notes]
    assert notes == [(67, 1.0, 0.0), (69, 0.5, 1.0), (71, 2.0, 2.0), (60, 0.25, 4.0)]
    assert seconds(events, 90) == pytest.approx(4.25 * 60 / 90)


def test_a_primer_is_parsed_or_refused_by_name() -> None:
    from edgernn.runtime.apps.music import parse_primer

    assert parse_primer("G4:1 F#4:0.5 r:1 B-4:2") == [Event(67, 1.0), Event(66, 0.5), Event(None, 1.0), Event(70, 2.0)]
    for bad, needle in (("H4:1", "expected a note"), ("C4:x", "must be a number"), ("C9:1", "outside"),
                        ("C4:-1", "positive"), ("C4:nan", "positive")):  # fmt: skip
        with pytest.raises(InputError, match=needle):
            parse_primer(bad)


torch = pytest.importorskip("torch")
pytest.importorskip("music21")

from edgernn.train.data_music import load_chorales, split_by_tune  # noqa: E402


@pytest.fixture(scope="module")
def chorales() -> list:
    return load_chorales(limit=60, cache=None)


def test_tunes_stay_on_one_side_of_the_split(chorales: list) -> None:
    train, valid = split_by_tune(chorales, every=4)
    assert train and valid and len(train) + len(valid) == len(chorales)
    assert not {c.tune() for c in train} & {c.tune() for c in valid}
    vocab = set(vocabulary())
    assert all(set(c.tokens) <= vocab and c.tokens[0] == "<s>" and c.tokens[-1] == "</s>" for c in chorales)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, chorales: list) -> Path:
    from edgernn.export.pipeline import export_checkpoint
    from edgernn.train.music import music_task
    from edgernn.train.tasks import recipe
    from edgernn.train.trainer import fit

    root = tmp_path_factory.mktemp("music")
    cfg = recipe("music", hidden_size=32, max_steps=30, batch_size=8, seq_len=64)
    res = fit(music_task(cfg, chorales), cfg, out=root / "run", log=lambda s: None)
    m = res.metrics
    assert m["valid_nll_per_event"] > 0 and m["5gram_nll"] > 0 and m["valid_chorales"] > 0
    export_checkpoint(root / "run" / "model.safetensors", root / "music.onnx")
    return root / "music.onnx"


def test_the_engine_streams_a_melody_that_follows_the_grammar(exported: Path) -> None:
    from edgernn.runtime import Engine
    from edgernn.runtime.apps.music import Composer, parse_primer

    comp = Composer(Engine.load(exported))
    a = list(comp.generate(40, parse_primer("G4:1 A4:1"), temperature=1.0, top_k=8, seed=3))
    b = list(comp.generate(40, parse_primer("G4:1 A4:1"), temperature=1.0, top_k=8, seed=3))
    assert a == b and len(a) == 40
    assert all(e.quarters in (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0) for e in a)
    assert all(e.pitch is None or 55 <= e.pitch <= 84 for e in a)


def _sox_stat(wav: Path) -> dict[str, float]:
    proc = subprocess.run(["sox", str(wav), "-n", "stat"], capture_output=True, text=True, check=True)
    stats = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"^(.+?):\s+(-?[\d.]+)\s*$", line)
        if m:
            stats[m.group(1).strip()] = float(m.group(2))
    return stats


def test_a_generated_chorale_renders_to_audible_audio(tmp_path: Path) -> None:
    from appcli import edgernn, shipped

    if shutil.which("fluidsynth") is None or shutil.which("sox") is None:
        pytest.skip("needs fluidsynth, fluid-soundfont-gm and sox (apt-get install; .ci/run installs them)")
    shipped("music")
    midi, wav = tmp_path / "c.mid", tmp_path / "c.wav"
    out = edgernn("run", "music", "--events", "24", "--primer", "G4:1 G4:1 D5:2", "--seed", "2",
                  "--temperature", "0.9", "--midi", str(midi), "--wav", str(wav), timeout=180).stdout  # fmt: skip
    length = float(re.search(r"([\d.]+) s at", out).group(1))  # type: ignore[union-attr]
    stat = _sox_stat(wav)
    print(f"rendered {stat['Length (seconds)']:.2f} s for {length:.2f} s of music, RMS {stat['RMS     amplitude']:.4f}")
    assert stat["RMS     amplitude"] > 0.005  # not silence
    assert length <= stat["Length (seconds)"] <= length + 4.0  # the music plus the organ's release
    assert np.isfinite(stat["Maximum amplitude"])


def test_melodies_batched_equal_each_alone(exported: Path) -> None:
    from edgernn.runtime import Engine

    engine = Engine.load(exported)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, len(vocabulary()), size=(3, 120))
    alone = [engine.stream().push(tokens[i]) for i in range(3)]
    batch = engine.batch()
    for _ in range(3):
        batch.join()
    together = np.stack([batch.step(tokens[:, t]) for t in range(120)], axis=1)
    worst = max(float(np.abs(together[i] - alone[i]).max()) for i in range(3))
    print(f"3 melodies batched vs alone over 120 tokens: max |diff| {worst:.2e}")
    assert worst <= 1e-5


def test_an_unreadable_score_or_cache_is_refused_by_name(tmp_path: Path) -> None:
    from edgernn.train.trainer import TrainingError

    bad = tmp_path / "bwv999.mxl"
    bad.write_bytes(b"PK\x03\x04 not a zip at all")
    with pytest.raises(TrainingError, match="bwv999.mxl: the score cannot be read"):
        load_chorales(paths=[bad])
    cache = tmp_path / "chorales.json"
    cache.write_text('[{"name": 1}]')
    with pytest.raises(TrainingError, match="damaged chorale cache"):
        load_chorales(cache=cache)
