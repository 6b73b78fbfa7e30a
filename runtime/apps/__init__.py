"""Streaming apps on the runtime: text generation, next-word suggestions, language id, weather.

Each app wraps one ``Stream`` and reads what it needs (vocabulary, labels, normalisation)
from its model's task facts in the stream spec; nothing is hard-coded. Example models ship
in ``edgernn/runtime/models/`` (built by ``make models``) and are used when no model is given::

    from edgernn.runtime.apps import load_app
    engine = load_app("langid")                 # the shipped example model
    engine = load_app("langid", "my.onnx")      # or any model with the langid task facts
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgernn.runtime.engine import Engine
from edgernn.runtime.errors import ModelLoadError, SpecError
from edgernn.runtime.session import SessionProfile

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
TASKS = ("textgen", "langid", "weather", "forecast", "music", "translate")


def shipped_model(task: str) -> Path:
    """The path of the example model for ``task`` that ships in the package."""
    if task not in TASKS:
        raise SpecError(f"no example model for task {task!r}; tasks: {', '.join(TASKS)}")
    path = MODELS_DIR / f"{task}.onnx"
    if not path.is_file():
        raise ModelLoadError(
            f"{path}: the example {task} model is missing; build it with `make models` or pass --model"
        )
    return path


def load_app(task: str, model: str | os.PathLike[str] | None = None, profile: SessionProfile | None = None) -> Engine:
    """Load ``model`` (the shipped example for ``task`` when None) and check it serves ``task``."""
    return check_app(Engine.load(model if model is not None else shipped_model(task), profile), task)


def check_app(engine: Engine, task: str) -> Engine:
    """``engine``, or SpecError when its spec says it is a model for another app."""
    name = engine.spec.task.get("name")
    if name in TASKS and name != task:
        raise SpecError(f"{engine.source}: a {name} model (spec.task.name), the {task} app needs a {task} model")
    return engine


def task_field(engine: Engine, key: str, kind: type | tuple[type, ...]) -> Any:
    """``engine.spec.task[key]``, checked to be of ``kind``; SpecError naming the field otherwise."""
    value = engine.spec.task.get(key)
    if not isinstance(value, kind) or (isinstance(value, (str, list)) and not value):
        raise SpecError(f"{engine.source}: spec.task has no usable {key!r} (got {value!r})")
    return value
