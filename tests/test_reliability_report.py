"""The reliability report: its judgement and its rendering, and one small end-to-end run of the command."""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import pytest

from edgernn.cli import reliability as reliability_cli
from edgernn.reliability import suite as reliability
from edgernn.reliability.report import failures, render

GOOD = {
    "command": "edgernn reliability",
    "total_seconds": 12.0,
    "long": False,
    "machine": {
        "cpu": "cpu",
        "cores": 2,
        "memory_gib": 8,
        "platform": "linux",
        "python": "3.11",
        "onnxruntime": "1.32",
        "numpy": "2",
    },
    "load": {"samples": [1.0, 3.0], "mean": 2.0, "max": 3.0},
    "sizes": {
        "mutants": 7,
        "fuzz_examples": 5,
        "soak_steps": 100,
        "many_streams": 10,
        "many_steps": 2,
        "threads": 2,
        "per_thread": 3,
        "thread_steps": 2,
    },
    "files": {
        "seconds": 1.0,
        "cases": [
            {
                "name": "empty",
                "fault": "an empty file",
                "expect": "ModelLoadError",
                "outcome": "typed",
                "error": "ModelLoadError",
                "message": "/m: empty",
                "bait_opened": [],
                "traced": True,
                "ok": True,
            }
        ],
    },
    "fuzz": {
        "models": {
            "gru": {
                "ok": True,
                "examples": 5,
                "ops": {"step": 3},
                "errors": {"InputError": 2},
                "frames": 9,
                "max_abs_err": 1e-7,
                "seconds": 1.0,
            }
        },
        "probes": {},
    },
    "soak": {
        k: {
            "model": "gru",
            "streams": 1,
            "steps": 100,
            "seconds": 1.0,
            "rss_curve": [[50, 100.0], [100, 100.5]],
            "rss_growth_mib": 0.5,
            "max_abs_err": 1e-7,
            "err_by_tenth": [1e-7] * 10,
            "state_err": 1e-7,
        }
        for k in ("one", "many")
    },
    "threads": {
        "gru": {
            "threads": 2,
            "streams": 6,
            "steps": 2,
            "seconds": 0.1,
            "identical_to_sequential": True,
            "max_abs_err": 1e-7,
            "distinct_outputs": True,
            "contention": {"threads": 2, "streams": 8, "calls": 10, "max_state_err": 1e-7},
        }
    },
    "snapshots": {
        "snapshot truncated by one byte": "SnapshotError: checksum",
        "pickle code ran": "no",
        "checkpoint with one weight bit flipped": "CheckpointError: sha256",
    },
}


def test_a_clean_run_passes_and_renders_every_section() -> None:
    assert failures(GOOD) == []
    text = render(GOOD)
    assert "**All checks passed.**" in text
    for title in (
        "## Load held",
        "## 1. Untrusted",
        "## 2. Bad inputs",
        "## 3. Soak",
        "## 4. Concurrency",
        "## 5. Snapshots",
        "## Findings",
        "## Not covered",
    ):
        assert title in text
    assert "| empty | an empty file | ModelLoadError | ModelLoadError | no | empty |" in text
    assert "mean 2.00, max 3.00" in text


@pytest.mark.parametrize(
    "path, value, name",
    [
        (("files", "cases", 0, "ok"), False, "file case empty"),
        (("fuzz", "models", "gru", "max_abs_err"), 1e-3, "fuzz gru"),
        (("soak", "one", "rss_growth_mib"), 50.0, "soak one"),
        (("soak", "many", "max_abs_err"), 1e-2, "soak many"),
        (("threads", "gru", "identical_to_sequential"), False, "threads gru"),
        (("threads", "gru", "contention", "max_state_err"), 1.0, "contention gru"),
        (("snapshots", "pickle code ran"), "yes", "pickle code ran"),
        (("snapshots", "snapshot truncated by one byte"), "accepted", "snapshot truncated by one byte"),
        (("fuzz", "probes", "ragged nested list to push"), "untyped: ValueError", "probe ragged nested list to push"),
    ],
)
def test_each_bad_figure_fails_the_run(path: tuple, value: object, name: str) -> None:
    bad = copy.deepcopy(GOOD)
    node = bad
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert failures(bad) == [name]
    assert "check(s) failed" in render(bad)


def test_the_command_writes_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = reliability.Sizes(5, 2, 200, 20, 3, 2, 3, 2)
    monkeypatch.setattr(reliability.Sizes, "pick", classmethod(lambda cls, long: tiny))
    out = tmp_path / "R.md"
    raw = tmp_path / "runs" / "r.json"
    args = argparse.Namespace(out=str(out), long=False, json=str(raw), skip=["files", "fuzz"])
    assert reliability_cli.main(args) == 0
    text = out.read_text()
    assert "soak 200 steps on one stream" in text and "20 streams x 3 steps" in text
    assert "| gru-tokens | 2 x 3 x 2 | yes | yes |" in text
    assert "| pickle code ran | no |" in text
    assert (tmp_path / "runs" / "r.json").stat().st_size > 0
