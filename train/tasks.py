"""The recipes of ``edgernn train`` (``train/recipes.toml``) and the builder of each task.

A recipe is a named TrainConfig; the one named after a task is its preset, the shipped-*
ones rebuild the example models. Unknown recipe, task or cell names raise ``TrainingError``
listing the valid ones.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from edgernn.runtime.spec import CELLS
from edgernn.train.trainer import Task, TrainConfig, TrainingError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the tomli backport, a conditional dependency on 3.10
    import tomli as tomllib

RECIPES_FILE = Path(__file__).with_name("recipes.toml")
TASK_NAMES = ("textgen", "langid", "weather", "recall", "forecast", "music", "translate")


@dataclass(frozen=True)
class Recipe:
    """A named training recipe of ``train/recipes.toml``: the run's config and its torch threads."""

    name: str
    config: TrainConfig
    threads: int = 0  # torch threads (0: torch's default); a run setting, not saved with the model


def load_recipes(path: Path = RECIPES_FILE) -> dict[str, Recipe]:
    """Every recipe of ``path``; a key that is not a TrainConfig field is a TrainingError naming it."""
    known = {f.name for f in fields(TrainConfig)}
    out: dict[str, Recipe] = {}
    for name, table in tomllib.loads(path.read_text(encoding="utf-8")).items():
        threads = int(table.get("threads", 0))
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items() if k != "threads"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TrainingError(f"{path}: recipe {name!r}: {unknown} are not TrainConfig fields ({sorted(known)})")
        out[name] = Recipe(name, TrainConfig(**values), threads)
    return out


RECIPES = load_recipes()


def recipe(name: str, **overrides: Any) -> TrainConfig:
    """The config of recipe ``name`` (a task's name: its preset) with ``overrides`` (None values ignored)."""
    check_names(name, overrides.get("cell"))
    cfg = replace(RECIPES[name].config, **{k: v for k, v in overrides.items() if v is not None})
    if cfg.task == "recall" and overrides.get("seq_len") is None:
        cfg = replace(cfg, seq_len=cfg.delay + 2)
    return cfg


def check_names(recipe: str, cell: str | None = None) -> None:
    if recipe not in RECIPES:
        raise TrainingError(f"unknown recipe {recipe!r}; valid recipes: {', '.join(RECIPES)}")
    if cell is not None and cell not in CELLS:
        raise TrainingError(f"unknown cell {cell!r}; valid cells: {', '.join(CELLS)}")


def build_task(cfg: TrainConfig) -> Task:
    """Load the data of ``cfg.task`` (from installed packages) and build its Task."""
    if cfg.task not in TASK_NAMES:
        raise TrainingError(f"unknown task {cfg.task!r}; valid tasks: {', '.join(TASK_NAMES)}")
    if cfg.cell not in CELLS:
        raise TrainingError(f"unknown cell {cfg.cell!r}; valid cells: {', '.join(CELLS)}")
    builders: dict[str, Callable[[TrainConfig], Task]] = {
        "textgen": _textgen,
        "langid": _langid,
        "weather": _weather,
        "recall": _recall,
        "forecast": _forecast,
        "music": _music,
        "translate": _translate,
    }
    return builders[cfg.task](cfg)


def _textgen(cfg: TrainConfig) -> Task:
    from edgernn.train.textgen import textgen_task

    return textgen_task(cfg)


def _langid(cfg: TrainConfig) -> Task:
    from edgernn.train.langid import langid_task

    return langid_task(cfg)


def _weather(cfg: TrainConfig) -> Task:
    from edgernn.train.weather import weather_task

    return weather_task(cfg)


def _recall(cfg: TrainConfig) -> Task:
    from edgernn.train.recall import recall_task

    return recall_task(cfg)


def _forecast(cfg: TrainConfig) -> Task:
    from edgernn.train.forecast import forecast_task

    return forecast_task(cfg)


def _music(cfg: TrainConfig) -> Task:
    from edgernn.train.music import music_task

    return music_task(cfg)


def _translate(cfg: TrainConfig) -> Task:
    from edgernn.train.translate import translate_task

    return translate_task(cfg)
