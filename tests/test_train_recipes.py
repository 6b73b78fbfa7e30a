"""The training recipes live in one file (train/recipes.toml); the Makefile calls them by name."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from edgernn.train.tasks import RECIPES, TASK_NAMES, load_recipes, recipe
from edgernn.train.trainer import TrainConfig, TrainingError

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ("textgen", "langid", "weather", "forecast", "music", "translate")
# Read by the forecast task only: the other shipped recipes leave them at their defaults.
FORECAST_FIELDS = {"dataset", "csv", "time_col", "target_col", "covariates", "horizon", "season", "holdout"}
FORECAST_FIELDS.add("fill_missing")
ATTENTION_FIELDS = {"window", "heads"}  # read by the attention cell only
TRANSLATE_FIELDS = {"lang", "catalogs", "tm"}  # read by the translate task only


def test_every_task_has_its_preset_and_every_shipped_model_its_recipe() -> None:
    for task in TASK_NAMES:
        assert RECIPES[task].config.task == task
    for task in SHIPPED:
        assert RECIPES[f"shipped-{task}"].config.task == task
        assert RECIPES[f"shipped-{task}"].threads == 1


@pytest.mark.parametrize("task", SHIPPED)
def test_a_shipped_recipe_sets_every_field_so_a_default_cannot_move_it(task: str) -> None:
    text = (REPO / "train" / "recipes.toml").read_text(encoding="utf-8")
    table = text.split(f"[shipped-{task}]\n", 1)[1].split("\n[", 1)[0]
    keys = {line.split("=")[0].strip() for line in table.splitlines() if "=" in line and not line.startswith("#")}
    # memory_bias's default (None: the cell's usual bias) has no TOML spelling
    wanted = {f.name for f in fields(TrainConfig) if f.default is not None} | {"threads"}
    if task != "forecast":
        wanted -= FORECAST_FIELDS
    if RECIPES[f"shipped-{task}"].config.cell != "attention":
        wanted -= ATTENTION_FIELDS
    if task != "translate":
        wanted -= TRANSLATE_FIELDS
    assert keys == wanted, f"shipped-{task} misses {sorted(wanted - keys)}, has extra {sorted(keys - wanted)}"


def test_overrides_replace_a_recipes_values_and_none_keeps_them() -> None:
    cfg = recipe("shipped-weather", hidden_size=8, lr=None)
    assert cfg.hidden_size == 8 and cfg.lr == RECIPES["shipped-weather"].config.lr == 3e-3
    assert recipe("recall", delay=5).seq_len == 7  # recall's window follows the delay
    assert recipe("recall", delay=5, seq_len=9).seq_len == 9


def test_a_key_that_is_not_a_config_field_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "recipes.toml"
    path.write_text('[mine]\ntask = "weather"\nhiden_size = 8\n', encoding="utf-8")
    with pytest.raises(TrainingError, match=r"recipe 'mine': \['hiden_size'\] are not TrainConfig fields"):
        load_recipes(path)


def test_the_makefile_trains_the_shipped_models_by_recipe_name_only() -> None:
    make = (REPO / "Makefile").read_text(encoding="utf-8")
    train_lines = [line for line in make.splitlines() if "edgernn train" in line]
    assert train_lines, "the Makefile has no `edgernn train` line"
    for line in train_lines:
        flags = set(re.findall(r"--[a-z-]+", line))
        assert flags <= {"--out", "--force"}, f"training flags belong in train/recipes.toml: {line.strip()}"
    assert any("train shipped-$*" in line for line in train_lines)
