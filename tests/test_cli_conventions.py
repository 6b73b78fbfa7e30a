"""Issue 19 item 2: one CLI convention, export's PASS / FAIL line, profile's trace and plots.

Real commands on real models: the shipped example models (runtime commands) and a small
checkpoint exported with the real exporter.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest
from appcli import shipped
from conftest import tiny_model

import edgernn.cli.profile as profile_cli
from edgernn.cli import COMMANDS, build_parser, main
from edgernn.cli.options import HelpFormatter
from edgernn.runtime import Engine
from edgernn.train.checkpoint import save_checkpoint

WRITERS = ("train", "export", "bench", "reliability", "demo")  # commands whose main output is -o/--out
JSON = ("inspect", "devices", "profile", "bench", "reliability")


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    got = capsys.readouterr()
    return int(code or 0), got.out, got.err


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    save_checkpoint(path, tiny_model("gru", layers=1), {"lr": 0.01}, {"name": "textgen", "vocabulary": "ab"})
    return path


def test_version(capsys) -> None:
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and re.fullmatch(r"edgernn \d+\.\d+\.\d+\S*\n", out)


def test_every_help_shows_defaults_and_an_example(capsys) -> None:
    for name, p in subparsers().items():
        code, out, _ = run([name, "--help"], capsys)
        assert code == 0
        assert "\nexample:\n  edgernn" in out or "\nexample:\n  torchrun" in out, name
        fmt = HelpFormatter(name)
        for action in p._actions:
            shown = action.default not in (None, False, argparse.SUPPRESS, "", []) and action.option_strings
            if shown and action.help is not argparse.SUPPRESS:
                assert "default" in (fmt._get_help_string(action) or ""), f"{name} {action.option_strings}"
    code, out, _ = run(["profile", "--help"], capsys)
    assert re.search(r"--calls CALLS\s+timed calls \(default: 2000\)", out) and "-o, --out" not in out
    code, out, _ = run(["export", "--help"], capsys)
    assert "-o, --out FILE" in out and "--output" not in out and "--validate, --no-validate" in out


def test_out_and_json_mean_the_same_everywhere() -> None:
    parsers = subparsers()
    assert set(WRITERS) | set(JSON) <= set(COMMANDS)
    for name in WRITERS:
        outs = [a for a in parsers[name]._actions if a.dest == "out"]
        assert [a.option_strings for a in outs] == [["-o", "--out"], ["--output"]], name  # --output: old spelling
    for name in JSON:
        (action,) = [a for a in parsers[name]._actions if "--json" in a.option_strings]
        assert action.nargs == "?" and action.const == "-" and action.default is None, name
    for name, p in parsers.items():
        flags = {s for a in p._actions for s in a.option_strings}
        assert not flags & {"--output-dir", "--json-out", "--outfile"}, name


def test_json_to_stdout_or_to_a_file(tmp_path, capsys) -> None:
    model = str(shipped("weather"))
    code, out, err = run(["inspect", "--json", model, "--no-providers"], capsys)  # bare --json before the model
    assert code == 0 and json.loads(out)["spec"]["model"]["cell"] == "gru"
    code, out, _ = run(["devices", "--json"], capsys)
    assert code == 0 and "cpu" in {row["profile"] for row in json.loads(out)}
    code, out, err = run(["profile", model, "--calls", "50", "--op-calls", "0", "--quiet", "--json"], capsys)
    report = json.loads(out)  # stdout holds only the JSON; the text report went to stderr
    assert code == 0 and report["calls"] == 50 and "latency per call (50 calls" in err
    target = tmp_path / "sub" / "p.json"
    code, out, _ = run(["profile", model, "--calls", "50", "--op-calls", "0", "--quiet", "--json", str(target)], capsys)
    assert code == 0 and json.loads(target.read_text())["calls"] == 50
    assert out.rstrip().endswith(f"wrote:\n  {target}  ({target.stat().st_size / 1024:,.1f} KiB)")


def test_export_validates_by_default_and_says_pass_with_the_effective_tolerance(ckpt, tmp_path, capsys) -> None:
    out = tmp_path / "m.onnx"
    code, printed, err = run(["export", str(ckpt), "-o", str(out), "--steps", "300"], capsys)
    assert code == 0, err
    parity = Engine.load(out).spec.provenance["parity"]
    assert parity["steps"] == 300
    (line,) = [x for x in printed.splitlines() if x.startswith(("PASS", "FAIL"))]
    worst = max(parity["outputs"], key=lambda n: parity["outputs"][n] / (1e-5 * parity["scales"][n]))
    scale = parity["scales"][worst]
    assert line.startswith(
        f"PASS  parity vs PyTorch over 300 carried steps: max |torch - onnx| {parity['outputs'][worst]:.3g} on "
        f"{worst!r} <= effective tolerance {1e-5 * scale:.3g}"
    )
    if scale > 1:  # the scaling is said, not hidden
        assert f"= 1e-05 x max|reference| {scale:.3g}: scaled where values exceed 1" in line
    assert printed.rstrip().endswith(f"wrote:\n  {out}  ({out.stat().st_size / 1024:,.1f} KiB)")

    again = tmp_path / "strict.onnx"
    code, printed, _ = run(["export", str(ckpt), "-o", str(again), "--steps", "50", "--tolerance", "1e-12"], capsys)
    assert code == 1 and not again.exists()
    assert re.match(r"FAIL  validation: OutputValueError: output '\w+': max \|reference - onnx\| \S+ exceeds", printed)

    skipped = tmp_path / "unchecked.onnx"
    code, printed, _ = run(["export", str(ckpt), "--output", str(skipped), "--no-validate"], capsys)
    assert (
        code == 0
        and "not validated (--no-validate)" in printed
        and "parity" not in Engine.load(skipped).spec.provenance
    )


def test_export_writes_beside_the_checkpoint_by_default(ckpt, capsys) -> None:
    code, printed, err = run(["export", str(ckpt.parent), "--steps", "20", "--force"], capsys)
    assert code == 0, err
    assert (ckpt.parent / "model.onnx").is_file() and f"  {ckpt.parent / 'model.onnx'}  (" in printed


def test_profile_keeps_the_onnxruntime_trace(tmp_path, capsys) -> None:
    model = str(shipped("weather"))
    trace = tmp_path / "trace.json"
    argv = ["profile", model, "--calls", "20", "--op-calls", "7", "--quiet", "--trace", str(trace)]
    code, printed, err = run(argv, capsys)
    assert code == 0, err
    events = json.loads(trace.read_text())  # Chrome trace event format: Perfetto and chrome://tracing open it
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    assert len(runs) == 7 and all(e["ph"] == "X" and e["dur"] >= 0 for e in runs)
    assert f"  {trace}  (" in printed
    code, _, err = run(["profile", model, "--op-calls", "0", "--trace", str(tmp_path / "t2.json")], capsys)
    assert code == 1 and "--trace keeps the trace of the --op-calls run" in err


def test_profile_plot_title_names_model_batch_chunk_device(tmp_path, capsys, monkeypatch) -> None:
    pytest.importorskip("matplotlib")
    titles: list[str] = []
    real = profile_cli.plot_latency
    monkeypatch.setattr(
        profile_cli, "plot_latency", lambda us, out, title, b: (titles.append(title), real(us, out, title, b))
    )
    png = tmp_path / "p.png"
    argv = ["profile", str(shipped("textgen")), "--batch", "2", "--chunk", "3", "--calls", "30", "--op-calls", "0"]
    code, printed, err = run([*argv, "--quiet", "--plot", str(png)], capsys)
    assert code == 0, err
    assert titles == ["textgen.onnx on cpu: batch 2, chunk 3\nengine Batch.step_many (2 streams x 3 frames)"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"  {png}  (" in printed


def test_plot_axes_show_the_data_not_the_budget() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    us = np.r_[np.random.default_rng(0).normal(10.0, 0.5, 1000), 5000.0]  # one stall among 1000 calls
    fig = profile_cli.latency_figure(us, "t", budget_ms=100.0)  # budget 10,000x the median
    hist, line = fig.axes
    p99 = float(np.percentile(us, 99))
    assert hist.get_xlim()[1] <= 4 * p99 * 1.05  # the x axis ends near the data, not at 100 ms
    assert line.get_ylim()[1] <= 5000 * 1.05 + 1e-9  # the timeline shows the stall, not the budget
    notes = " ".join(t.get_text() for t in hist.texts)
    assert "1 calls above" in notes and "budget 100 ms" in notes and "off this axis" in notes
    plt.close(fig)
    fig = profile_cli.latency_figure(us[:-1], "t", budget_ms=0.011)  # a budget inside the data is drawn
    assert any("budget 0.011 ms" in t.get_text() for t in fig.axes[0].get_legend().get_texts())
    plt.close(fig)
