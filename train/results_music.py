"""The music rows of docs/TRAINING_RESULTS.md: likelihood on held-out tunes and whether
sampled melodies keep a key, beside a note n-gram and the held-out chorales themselves."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

RUNS: list[tuple[str, dict[str, Any]]] = [("music", {})]


def write_key_report(out: Path) -> dict[str, Any]:
    """Sample from the run's model and the 5-gram, measure keys (music21); kept as ``key.json``."""
    from edgernn.train.checkpoint import load_checkpoint
    from edgernn.train.music import key_report

    model, _ = load_checkpoint(out / "model.safetensors")
    report = key_report(model)
    (out / "key.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def section(load: Callable[[str], Any], runs_dir: Path) -> list[str]:
    got = load("music")
    path = runs_dir / "music" / "key.json"
    if got is None or not path.exists():
        return []
    m, c, _env = got
    key = json.loads(path.read_text())
    mm = c["model"]
    return [
        "## Melody (Bach chorales, soprano line, `edgernn train music`)",
        "",
        f"{mm['cell'].upper()} {mm['hidden_size']}x{mm['num_layers']}, {c['train']['max_steps']} updates; "
        f"{m['train_chorales']} training chorales (each transposed by -5..+6 semitones where the range allows), "
        f"{m['valid_chorales']} held out, split by tune (the same melody under several BWV numbers stays on one side).",
        "",
        "| model / baseline | held-out negative log-likelihood per event (nats) |",
        "|---|---|",
        f"| **{mm['cell'].upper()} {mm['hidden_size']}** | **{m['valid_nll_per_event']:.3f}** |",
        f"| 5-gram over the event tokens | {m['5gram_nll']:.3f} |",
        f"| 3-gram | {m['3gram_nll']:.3f} |",
        "",
        f"Keeping the key: {key['pieces']} melodies of {key['events']} events sampled (temperature 1) from each; "
        "music21's key analysis of each, and the share of its notes in that key's scale:",
        "",
        "| source | notes in the key |",
        "|---|---|",
        f"| **{mm['cell'].upper()} {mm['hidden_size']}** | **{key['model']:.3f}** |",
        f"| 5-gram (longest seen context) | {key['5gram']:.3f} |",
        f"| the held-out chorales | {key['held-out chorales']:.3f} |",
        "",
    ]
