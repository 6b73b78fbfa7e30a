"""``edgernn run MODEL.onnx --spec spec.json --input x.npy|x.wav -o y.npy``: any model over a file of frames."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from edgernn.bench.thirdparty_models import BareLoop, by_key, missing, model_path
from edgernn.cli import main as cli_main
from edgernn.runtime import Engine, infer_spec
from edgernn.runtime.specfile import spec_json

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "gru-frames.onnx"
needs_thirdparty = pytest.mark.skipif(
    bool(missing()), reason=f"third-party models not fetched ({', '.join(missing())}): run `make thirdparty`"
)


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


@needs_thirdparty
def test_a_wav_through_silero_equals_a_bare_loop_over_the_padded_audio(tmp_path, capsys) -> None:
    m = by_key("silero_vad")
    path = model_path(m.key)
    spec = tmp_path / "spec.json"
    spec.write_text(spec_json(infer_spec(path, **m.hints)))
    pcm = (np.random.default_rng(4).standard_normal(16000 + 300) * 3000).clip(-32768, 32767).astype(np.int16)
    write_wav(tmp_path / "a.wav", pcm)
    out = tmp_path / "p.npy"
    assert cli_main(["run", str(path), "--spec", str(spec), "--input", str(tmp_path / "a.wav"), "-o", str(out)]) == 0
    got = np.load(out)
    assert got.shape == (32, 1)  # 31 whole windows of 512, then the last 300 samples flushed, zero-padded
    samples = np.zeros(32 * 512, np.float32)
    samples[: pcm.size] = pcm / 32768.0
    engine = Engine.load(path, spec=spec)
    want = BareLoop(engine.session, m.bare).run(samples, 512)
    diff = np.abs(got.ravel() - want).max()
    print(f"edgernn run silero over a wav vs a bare onnxruntime loop: max |diff| {diff:.1e}")
    np.testing.assert_allclose(got.ravel(), want, rtol=0, atol=1e-6)
    assert "16300 samples at 16000 Hz" in capsys.readouterr().out
    assert cli_main(["run", str(path), "--spec", str(spec), "--input", str(tmp_path / "a.wav"), "--no-flush"]) == 0
    assert "(31, 1)" in capsys.readouterr().out


def test_a_npy_of_frames_equals_push_for_any_chunk(tmp_path) -> None:
    xs = np.random.default_rng(1).standard_normal((50, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", xs)
    want = Engine.load(FIXTURE).stream().push(xs)
    for chunk in ("64", "7", "1"):
        out = tmp_path / f"y{chunk}.npy"
        argv = ["run", str(FIXTURE), "--input", str(tmp_path / "x.npy"), "--chunk", chunk, "-o", str(out)]
        assert cli_main(argv) == 0
        got = np.load(out)
        assert got.shape == (50, 2)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "make, extra, says",
    [
        (lambda d: np.save(d / "x.npy", np.zeros((5, 4), np.float32)), [], "input 'x': frame axis 0 has size 4"),
        (lambda d: np.save(d / "x.npy", np.array([1.0, np.nan, 2.0] * 2, np.float32).reshape(2, 3)), [], "NaN"),
        (lambda d: (d / "x.npy").write_bytes(b"not numpy"), [], "cannot read it as a .npy array"),
        (lambda d: np.save(d / "x.npy", np.float32(1)), [], "a single value"),
        (lambda d: write_wav(d / "x.wav", np.zeros(10, np.int16)), [], "a .wav file gives one sample per frame"),
        (lambda d: (d / "x.txt").write_text("1 2 3"), [], "expected a .npy or .wav file of frames"),
        (lambda d: np.save(d / "x.npy", np.zeros((5, 3), np.float32)), ["-o", "y.txt"], "name it FILE.npy"),
        (lambda d: np.save(d / "x.npy", np.zeros((5, 3), np.float32)), ["--no-input"], "reads its frames from --input"),
    ],
)
def test_bad_input_is_one_typed_line_and_writes_nothing(make, extra, says, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    make(tmp_path)
    src = next(p for p in tmp_path.iterdir() if p.name.startswith("x."))
    argv = ["run", str(FIXTURE), *(["--input", str(src)] if "--no-input" not in extra else [])]
    argv += [a for a in extra if a != "--no-input"] or ["-o", "y.npy"]
    assert cli_main(argv) == 1
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "y.npy").exists()


@needs_thirdparty
def test_a_model_without_a_spec_says_how_to_bring_one_and_an_app_refuses_spec(tmp_path, capsys) -> None:
    np.save(tmp_path / "f.npy", np.zeros((4, 400), np.float32))
    assert cli_main(["run", str(model_path("fsmn_vad")), "--input", str(tmp_path / "f.npy")]) == 1
    assert "SpecError" in (err := capsys.readouterr().err) and "--spec" in err and "Traceback" not in err
    spec = tmp_path / "s.json"
    spec.write_text(spec_json(infer_spec(model_path("fsmn_vad"))))
    assert cli_main(["run", "textgen", "--spec", str(spec)]) == 1
    assert "for `edgernn run MODEL.onnx`" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli_main(["run", "nothing"])
    assert exit_.value.code == 2 and "expected an app" in capsys.readouterr().err
