"""infer_spec on the real third-party models: messages a user can follow, specs to paste, file, embed, CLI.

Skipped, with the reason, when ``make thirdparty`` has not filled the cache.
"""

from __future__ import annotations

import shlex

import numpy as np
import onnxruntime as ort
import pytest

from edgernn.bench.thirdparty_models import MODELS, BareLoop, by_key, frames, missing, model_path
from edgernn.cli import main as cli_main
from edgernn.runtime import Engine, SpecError
from edgernn.runtime.infer import HintError, infer_spec
from edgernn.runtime.specfile import embed_spec, read_spec, spec_json, spec_python

pytestmark = pytest.mark.skipif(
    bool(missing()), reason=f"third-party models not fetched ({', '.join(missing())}): run `make thirdparty`"
)


def follow(path, first: dict | None = None, rounds: int = 4):
    """Call infer_spec, and on HintError call it again with exactly the hints its message gives."""
    hints, asked = dict(first or {}), []
    for _ in range(rounds):
        try:
            return infer_spec(path, **hints), asked
        except HintError as exc:
            asked.append(str(exc))
            hints = exc.hints
    raise AssertionError(f"still asking after {rounds} rounds: {asked[-1]}")


@pytest.mark.parametrize("key", [m.key for m in MODELS if m.followed])
def test_following_the_messages_gives_the_documented_spec(key) -> None:
    m = by_key(key)
    spec, asked = follow(model_path(key))
    assert spec == infer_spec(model_path(key), **m.hints)
    assert len(asked) <= 1, "every ambiguity is reported in the first message"
    Engine.load(model_path(key), spec=spec).stream().step(frames(m, 1)[0])


def test_two_specs_come_only_from_the_messages() -> None:
    asked = {key: follow(model_path(key))[1] for key in ("dtln_1", "gtcrn")}
    dtln = asked["dtln_1"][0]  # a state whose names pair by no rule; an input with its batch fixed at 1
    assert "inputs ['input_2', 'input_3'] each have the shape of an output" in dtln
    assert "pairs={'input_3': 'tf_op_layer_stack_2'} ('input_2' streamed)" in dtln
    assert "input 'input_2' shape [1, 1, 257]: no symbolic axis to be the batch axis" in dtln
    assert "all at once: infer_spec(" in dtln and "batch_axes={'input_2': 0}" in dtln
    assert "input 'mix' shape [1, 257, 1, 2]" in asked["gtcrn"][0] and "batch_axes={'mix': 0}" in asked["gtcrn"][0]


def test_a_scalar_input_is_asked_for_with_the_other_hints() -> None:
    with pytest.raises(HintError, match=r"input 'sr' is a scalar: give its value with constants=\{'sr': VALUE\}"):
        infer_spec(model_path("silero_vad"))


def test_no_time_axis_leaves_no_unresolved_symbol() -> None:
    """The old ``time_axes={'input': -1}`` gave a symbolic 'd1' that crashed load with a ValueError."""
    path = model_path("silero_vad")
    with pytest.raises(SpecError, match=r"axis 1 is symbolic but neither batch nor time: .*shapes=\{'input': "):
        infer_spec(path, constants={"sr": 16000}, time_axes={"input": -1})
    spec = infer_spec(path, constants={"sr": 16000}, time_axes={"input": -1}, shapes={"input": ["batch", 576]})
    assert spec.inputs[0].shape == ("batch", 576)
    with pytest.raises(SpecError, match=r"shapes\['input'\] axis 1: expected a size >= 1"):
        infer_spec(path, constants={"sr": 16000}, shapes={"input": ["batch", 0]})


def test_infer_spec_opens_no_session(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("infer_spec opened an onnxruntime session")

    session = ort.InferenceSession(str(model_path("flashvad")), providers=["CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", refuse)
    for m in MODELS:
        infer_spec(model_path(m.key), **m.hints)
    assert infer_spec(session) == infer_spec(model_path("flashvad"))  # a session the caller already has works too


@pytest.mark.parametrize("key", [m.key for m in MODELS])
def test_the_spec_as_python_and_json_round_trips(key, tmp_path) -> None:
    spec = infer_spec(model_path(key), **by_key(key).hints)
    scope: dict = {}
    exec(spec_python(spec), scope)
    assert scope["spec"] == spec
    (tmp_path / "spec.json").write_text(spec_json(spec))
    assert read_spec(tmp_path / "spec.json") == spec


def test_embedded_spec_loads_without_hints_and_runs_the_same(tmp_path) -> None:
    m = by_key("gtcrn")
    path = model_path(m.key)
    spec = infer_spec(path, **m.hints)
    copy = tmp_path / "gtcrn-spec.onnx"
    copy.write_bytes(embed_spec(path.read_bytes(), spec))
    engine = Engine.load(copy)
    assert engine.spec == spec
    again = embed_spec(copy.read_bytes(), spec)  # re-embedding replaces, never duplicates
    assert len(again) == copy.stat().st_size
    xs = frames(m, 20)
    bare = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = np.concatenate([y.ravel() for y in (engine.stream().push(xs),)])
    np.testing.assert_array_equal(got, BareLoop(bare, m.bare).run(xs, 1))


def test_cli_spec_prints_the_command_that_settles_it(tmp_path, capsys) -> None:
    path = str(model_path("dtln_1"))
    assert cli_main(["spec", path]) == 1
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("all at once: "))
    assert "--pair input_3=tf_op_layer_stack_2" in line and "--batch-axis input_2=0" in line
    argv = shlex.split(line.removeprefix("all at once: edgernn "))
    out, embedded = tmp_path / "spec.json", tmp_path / "dtln-spec.onnx"
    assert cli_main([*argv, "-o", str(out), "--embed", str(embedded)]) == 0
    assert read_spec(out) == infer_spec(path, **by_key("dtln_1").hints)
    assert Engine.load(embedded).spec == read_spec(out)
    assert cli_main(["spec", path, "-o", str(out)]) == 1  # exists: --force needed
    assert "exists: pass --force" in capsys.readouterr().err
    assert cli_main(["spec", path, "--batch-axis", "input_2"]) == 1
    assert "--batch-axis 'input_2': expected NAME=VALUE" in capsys.readouterr().err


def test_a_spec_file_loads_the_engine_and_drives_profile(tmp_path, capsys) -> None:
    m = by_key("silero_vad")
    path = model_path(m.key)
    spec_file = tmp_path / "silero.json"
    spec_file.write_text(spec_json(infer_spec(path, **m.hints)))
    assert Engine.load(path, spec=spec_file).spec == infer_spec(path, **m.hints)
    with pytest.raises(SpecError, match=r"no stream spec in its metadata.*edgernn spec MODEL -o spec.json"):
        Engine.load(path)
    argv = ["profile", str(path), "--spec", str(spec_file), "--calls", "20", "--warmup", "2", "--op-calls", "5"]
    assert cli_main([*argv, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "engine Stream.step (one window of 512)" in out and "LSTM" in out
