"""``make models`` rebuilds the shipped textgen model bit-identically on the same kind of CPU:
its recipe fixes the seed, the number of updates and one thread (no time budget). Checked on
the first updates of that very recipe (the Makefile's flags), run twice in fresh processes."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def make_flags(task: str) -> list[str]:
    text = (REPO / "Makefile").read_text()
    recipe = re.search(rf"^TRAIN_{task} := (.*)$", text, re.M)
    rule = re.search(r"^\t\$\(VENV\)/bin/edgernn train \$\* \$\(TRAIN_\$\*\) (.*) (?:-o|--out) ", text, re.M)
    if recipe is None or rule is None:
        pytest.skip("the Makefile no longer spells the shipped recipes as TRAIN_<task> flags")
    return shlex.split(recipe[1]) + shlex.split(rule[1])


def test_the_shipped_textgen_recipe_is_bit_identical_run_to_run(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    flags = make_flags("textgen")
    assert "--seconds" in flags and flags[flags.index("--seconds") + 1] == "0"  # updates, not a time budget
    assert flags[flags.index("--threads") + 1] == "1" and "--steps" in flags
    flags[flags.index("--steps") + 1] = "4"  # the recipe's first updates
    weights = []
    for run in ("a", "b"):
        cmd = [sys.executable, "-m", "edgernn", "train", "textgen", *flags, "--out", str(tmp_path / run)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        weights.append(load_file(str(tmp_path / run / "model.safetensors")))
    a, b = weights
    assert sorted(a) == sorted(b) and len(a) >= 4
    assert all(a[k].numpy().tobytes() == b[k].numpy().tobytes() for k in a)  # bit for bit
