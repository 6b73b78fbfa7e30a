"""Device profiles as data: every shipped profile parses; bad keys, providers and options are refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort
import pytest

from edgernn.cli import devices as devices_cli
from edgernn.devices.profiles import load_profile, parse_profile, profile_names
from edgernn.runtime.errors import ProfileError

SHIPPED = {
    "cpu", "cpu-int8", "cuda", "cuda-graph", "tensorrt", "openvino", "coreml", "nnapi", "xnnpack", "qnn", "directml",
}  # fmt: skip


def minimal(**extra: object) -> dict[str, object]:
    return {"name": "t", "providers": [{"name": "CPUExecutionProvider"}], **extra}


def test_every_shipped_profile_parses_into_session_options() -> None:
    assert set(profile_names()) == SHIPPED
    assert profile_names()[0] == "cpu"
    for name in profile_names():
        p = load_profile(name)
        assert p.name == name
        assert p.provider_names and all(n.endswith("ExecutionProvider") for n in p.provider_names)
        opts = p.session_options()
        assert opts.intra_op_num_threads == p.threads == 1
        assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        assert p.description


def test_profile_facts_are_read_from_the_toml() -> None:
    cpu, graph, trt, ov = (load_profile(n) for n in ("cpu", "cuda-graph", "tensorrt", "openvino"))
    assert cpu.providers() == [("CPUExecutionProvider", {})] and not cpu.strict and cpu.device == "cpu"
    assert graph.cuda_graph and not load_profile("cuda").cuda_graph and graph.device == "cuda" and graph.strict
    assert graph.provider_entries[0].options["do_copy_in_default_stream"] == "1"  # TOML true -> "1"
    assert trt.provider_names == ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    assert ov.provider_entries[0].options == {"device_type": "CPU", "precision": "FP32", "num_of_threads": "1",
                                              "num_streams": "1"}  # fmt: skip
    assert load_profile("cpu-int8").precision == "int8" and load_profile("cpu-int8").strict
    assert load_profile("directml").memory_pattern is False
    assert load_profile("xnnpack").session_config == {"session.intra_op.allow_spinning": "0"}
    assert cpu.stream_factory is None and graph.stream_factory is not None


def test_availability_follows_onnxruntime_with_a_reason() -> None:
    here = set(ort.get_available_providers())
    for name in profile_names():
        p = load_profile(name)
        missing = dict(p.missing_providers())
        not_built = {n for n in p.provider_names if n not in here}
        assert not_built <= set(missing) <= set(p.provider_names)  # + CUDA built in but no GPU visible
        assert all(len(reason) > 10 for reason in missing.values())
    assert load_profile("cpu").missing_providers() == []


def test_unknown_top_level_key_is_refused_listing_valid_keys() -> None:
    with pytest.raises(ProfileError, match=r"unknown key\(s\) \['thread'\]; valid keys: name, description, device"):
        parse_profile(minimal(thread=2), "x.toml")


def test_unknown_provider_is_refused_listing_valid_providers() -> None:
    data = {"name": "t", "providers": [{"name": "CudaProvider"}]}
    with pytest.raises(ProfileError, match=r"unknown provider 'CudaProvider'; valid providers: .*, CUDAExecution"):
        parse_profile(data, "x.toml")


def test_unknown_provider_option_is_refused_listing_valid_options() -> None:
    data = {"name": "t", "providers": [{"name": "OpenVINOExecutionProvider", "options": {"device": "CPU"}}]}
    with pytest.raises(ProfileError, match=r"unknown option\(s\) \['device'\] for OpenVINO.*options: .*device_type"):
        parse_profile(data, "x.toml")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"graph_optimization": "max"}, r"graph_optimization = 'max' is not one of 'disable', 'basic'"),
        ({"device": "tpu"}, r"device = 'tpu' is not one of 'cpu', 'cuda'"),
        ({"precision": "bf16"}, r"precision = 'bf16' is not one of 'fp32', 'fp16', 'int8'"),
        ({"threads": -1}, r"threads and inter_op_threads must be >= 0, got -1"),
        ({"threads": True}, r"threads must be an integer"),
        ({"strict": "yes"}, r"strict must be true or false, got 'yes'"),
        ({"providers": []}, r"providers is empty"),
    ],
)
def test_bad_values_are_refused_by_key(extra: dict[str, object], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        parse_profile(minimal(**extra), "x.toml")


def test_strict_defaults_to_true_unless_the_profile_is_plain_cpu() -> None:
    assert parse_profile(minimal()).strict is False
    gpu = {"name": "g", "device": "cuda", "providers": [{"name": "CUDAExecutionProvider"}]}
    assert parse_profile(gpu).strict is True
    assert parse_profile({"name": "o", "providers": [{"name": "OpenVINOExecutionProvider"}]}).strict is True


def test_unknown_profile_name_lists_the_shipped_ones(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"unknown device profile 'gpu'; valid profiles: cpu, coreml, cpu-int8"):
        load_profile("gpu")
    bad = tmp_path / "mine.toml"
    bad.write_text('name = "mine"\nproviders = [ { name = "CPUExecutionProvider" } ]\nthreads = 4\n')
    assert load_profile(bad).threads == 4
    bad.write_text("name = [\n")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(bad)


def test_devices_list_reports_each_profile_available_or_why_not(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    devices_cli.add_arguments(parser)
    assert devices_cli.main(parser.parse_args(["--json"])) == 0
    rows = {r["profile"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == SHIPPED
    here = set(ort.get_available_providers())
    for name, row in rows.items():
        assert row["available"] == all(p in here for p in row["providers"]), name
        assert (row["reason"] == "") == row["available"], name
    assert rows["cpu"]["available"] and rows["directml"]["available"] is False
    assert "Windows" in rows["directml"]["reason"]
    assert devices_cli.main(parser.parse_args([])) == 0
    text = capsys.readouterr().out
    assert "cpu         available" in text and "-> DmlExecutionProvider: " in text


def test_allow_on_cpu_is_a_list_of_op_types() -> None:
    assert parse_profile(minimal(allow_on_cpu=["Shape", "Gather"])).allow_on_cpu == ("Shape", "Gather")
    assert load_profile("cuda").allow_on_cpu == ()
    with pytest.raises(ProfileError, match="allow_on_cpu must list operator types as strings"):
        parse_profile(minimal(allow_on_cpu=[1]))
    with pytest.raises(ProfileError, match="allow_on_cpu must be a list of operator types"):
        parse_profile(minimal(allow_on_cpu="Shape"))
