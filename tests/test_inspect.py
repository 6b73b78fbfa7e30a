"""edgernn inspect: spec, inputs/outputs, operator counts, size, opset, providers; torch- and onnx-free,
through the runtime's safe reader (class 3 of issue 15: no onnx.load, probes under limits)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from appcli import BLOCKED_CLI

from edgernn.export.quantize import quantize_model
from edgernn.runtime.modelinfo import describe as inspect_model
from edgernn.runtime.spec import SPEC_VERSION


def test_inspect_reports_the_graph_and_the_spec(exported) -> None:
    model, path = exported["lstm"]
    info = inspect_model(path)
    assert info["size_bytes"] == path.stat().st_size and info["opsets"] == {"ai.onnx": 17}
    assert [(t["name"], t["shape"]) for t in info["inputs"]] == [
        ("x", ["batch", "time"]), ("h", [2, "batch", 32]), ("c", [2, "batch", 32])]
    assert [t["name"] for t in info["outputs"]] == ["y", "h_out", "c_out"]
    assert info["operators"]["LSTM"] == 2 and info["operators"]["Gather"] == 1
    n_params = sum(p.numel() for p in model.parameters())
    assert info["weights"]["float"] == n_params  # every weight, once
    assert info["spec"]["model"]["cell"] == "lstm" and info["spec"]["version"] == SPEC_VERSION
    assert info["providers"]["CPUExecutionProvider"] == "ok"


def test_inspect_counts_ops_inside_subgraphs_and_int8_weights(exported, tmp_path) -> None:
    out = tmp_path / "gru.int8.onnx"
    quantize_model(exported["gru"][1], out)
    info = inspect_model(out, providers=False)
    assert info["operators"]["com.microsoft.DynamicQuantizeMatMul"] == 6  # 2 of them inside Scan bodies
    assert info["operators"]["Scan"] == 2 and "GRU" not in info["operators"]
    assert info["weights"]["int8"] > info["weights"]["float"]
    assert info["spec"]["provenance"]["quantization"]["dtype"] == "int8"
    assert info["providers"] == {}


def test_a_crashing_provider_is_reported_not_fatal(exported, tmp_path) -> None:
    """onnxruntime 1.32's CPU EP segfaults on fp16 graphs at ENABLE_ALL: inspect must still answer."""
    out = tmp_path / "gru.fp16.onnx"
    quantize_model(exported["frames-gru"][1], out, mode="fp16")
    info = inspect_model(out)
    assert info["weights"].get("float16", 0) > 0
    verdict = info["providers"]["CPUExecutionProvider"]
    assert verdict == "ok" or verdict.startswith(("crashed", "load failed", "run failed"))


def test_cli_inspect_runs_without_torch(exported) -> None:
    _, path = exported["rnn"]
    code = (
        "import sys\nsys.modules['torch'] = None\nsys.modules['onnx'] = None\n"
        f"from edgernn.cli import main\nsys.exit(main(['inspect', {str(path)!r}, '--json']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["operators"]["RNN"] == 2 and info["providers"]["CPUExecutionProvider"] == "ok"
    text = subprocess.run([sys.executable, "-c", BLOCKED_CLI, "inspect", str(path), "--no-providers"],
                          capture_output=True, text=True, timeout=120)
    assert f"stream spec v{SPEC_VERSION}: rnn tokens" in text.stdout and "state h -> h_out" in text.stdout


def test_inspect_refuses_a_non_onnx_file(tmp_path) -> None:
    from edgernn.runtime import ModelLoadError

    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="not a valid ONNX file"):
        inspect_model(bad)


def _cli_blocked(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKED_CLI, "inspect", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("special", ["/dev/zero", "fifo", "folder", "/dev/null"])
def test_inspect_refuses_special_files_without_reading_them(special: str, tmp_path) -> None:
    """Before: onnx.load read /dev/zero until the OOM killer came (24 GB); a FIFO blocked forever."""
    import os

    path = tmp_path / "m.onnx"
    if special == "fifo":
        os.mkfifo(path)
    elif special == "folder":
        path.mkdir()
    else:
        path = special
    proc = _cli_blocked(str(path), timeout=30)
    # refused while parsing the arguments (cli/paths.py), before the safe reader is reached
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("edgernn inspect: error: argument model:") and "not a regular file" in proc.stderr


def test_inspect_refuses_the_bombs_that_engine_load_refuses(tmp_path) -> None:
    import onnx
    from test_reliability_bombs import chains

    for name, model in chains(384).items():
        path = tmp_path / f"{name}.onnx"
        onnx.save(model, str(path))
        proc = _cli_blocked(str(path))
        assert proc.returncode == 1 and "above the limit of 1073741824 bytes" in proc.stderr, (name, proc.stderr)


def test_inspect_reports_a_hostile_spec_as_a_typed_error(exported, tmp_path) -> None:
    import onnx

    from edgernn.runtime.spec import METADATA_KEY

    proto = onnx.load(str(exported["gru"][1]))
    entry = next(p for p in proto.metadata_props if p.key == METADATA_KEY)
    raw = json.loads(entry.value)
    raw["provenance"] = {"parity": "not a dict"}  # fine for the schema: the report must still print it
    raw["states"][0]["init"] = "abc"
    entry.value = json.dumps(raw)
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, str(bad))
    proc = _cli_blocked(str(bad), "--no-providers")
    assert proc.returncode == 1 and r"states[0].init: got 'abc'" in proc.stderr, proc.stderr
    raw["states"][0]["init"] = 0.0
    entry.value = json.dumps(raw)
    onnx.save(proto, str(bad))
    proc = _cli_blocked(str(bad), "--no-providers")
    assert proc.returncode == 0 and f"stream spec v{SPEC_VERSION}" in proc.stdout, proc.stderr


def test_provider_probes_run_under_an_address_space_limit(tmp_path, monkeypatch) -> None:
    """A graph that passes every load-time check but allocates 1.5 GiB when run on zeros: under a
    1 GiB probe limit the CPU probe fails to allocate (a typed answer), it does not take the memory."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgernn.runtime import modelinfo

    x = helper.make_tensor_value_info("x", TensorProto.INT64, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Add", ["x", "n"], ["s"]), helper.make_node("ConstantOfShape", ["s"], ["y"])]
    n = numpy_helper.from_array(np.array([384 << 20], np.int64), "n")  # 384 Mi floats = 1.5 GiB from x = 0
    g = helper.make_graph(nodes, "g", [x], [y], initializer=[n])
    path = tmp_path / "runbomb.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    monkeypatch.setattr(modelinfo, "PROBE_ADDRESS_SPACE", 1 << 30)
    verdict = modelinfo.describe(path)["providers"]["CPUExecutionProvider"]
    assert verdict != "ok" and ("failed" in verdict or "out of memory" in verdict), verdict
