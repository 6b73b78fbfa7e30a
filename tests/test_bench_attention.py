"""bench/attention.py: the KJV models' per-step rows, timed interleaved through the engine, the
state each stream holds read from the spec, and the section spliced into BENCHMARKS.md in place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from edgernn.bench import attention  # noqa: E402
from edgernn.bench.report import attention_section  # noqa: E402
from edgernn.export.onnx_export import export_model  # noqa: E402
from edgernn.runtime.spec import ModelConfig  # noqa: E402
from edgernn.train.model import build_model  # noqa: E402
from edgernn.train.results_attention import text_name  # noqa: E402

W32, GRU = text_name(1200, "w32"), text_name(240, "gru")


def test_rows_state_and_splice(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    configs = {
        W32: ModelConfig(
            cell="attention",
            input_kind="tokens",
            input_size=60,
            hidden_size=32,
            num_layers=2,
            output_size=60,
            window=32,
            heads=4,
        ),  # fmt: skip
        GRU: ModelConfig("gru", "tokens", 60, 48, 1, 60),
    }
    for name, cfg in configs.items():
        torch.manual_seed(0)
        (runs / name).mkdir(parents=True)
        export_model(build_model(cfg).eval(), runs / name / "model.onnx")
    (runs / W32 / "config.json").write_text(json.dumps({"train": {"max_seconds": 1200.0}}))  # GRU: none
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# b\n\n## Before\n\nkept\n\n## How it is measured\n\nkept too\n")
    out = tmp_path / "attention.json"
    argv = ["--runs", str(runs), "--calls", "20", "--rounds", "3", "--out", str(doc), "--json", str(out)]
    assert attention.main(argv) == 0
    rows = {r["name"]: r for r in json.loads(out.read_text())["rows"]}
    assert json.loads((runs / GRU / "latency.json").read_text()) == rows[GRU]
    assert list(rows) == [W32, GRU]
    # key and value caches: 2 layers x 32 positions x 32 wide, float32, plus the filled count
    assert rows[W32]["state_bytes"] == 2 * 2 * 32 * 32 * 4 + 4
    assert rows[GRU]["state_bytes"] == 48 * 4
    assert rows[W32]["model"] == "attention 32x2, window 32, 4 heads"
    assert all(r["step_cpu_us"] > 0 and r["step_wall_us_p50"] > 0 for r in rows.values())
    text = doc.read_text()
    assert text.count(attention.HEADING) == 1 and "kept\n" in text and "kept too" in text
    assert text.index(attention.HEADING) < text.index("## How it is measured")
    assert "| GRU 48x1 | ? |" in text and "| attention 32x2, window 32, 4 heads | 1200 |" in text
    assert rows[W32]["trained_cpu_s"] == 1200.0 and rows[GRU]["trained_cpu_s"] is None
    assert attention.main(argv) == 0  # a rerun replaces the section, once
    assert doc.read_text().count(attention.HEADING) == 1 and "kept too" in doc.read_text()
    assert attention.main(["--runs", str(tmp_path / "none"), "--out", str(doc), "--json", str(out)]) == 1


def test_report_renders_the_committed_section() -> None:
    if not attention.RESULTS.is_file():
        pytest.skip("no committed bench/results/attention.json")
    assert attention_section().startswith(attention.HEADING)
