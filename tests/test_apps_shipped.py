"""The example models ship in the wheel, carry their provenance, and run from the installed wheel without torch."""

from __future__ import annotations

import site
import subprocess
import sys
import zipfile
from pathlib import Path

import onnxruntime as ort
import pytest
from appcli import MODELS, shipped

from edgernn.runtime.spec import StreamSpec

REPO = Path(__file__).resolve().parents[1]
TASKS = ("textgen", "langid", "weather")


@pytest.mark.parametrize("task", TASKS)
def test_shipped_model_is_small_and_carries_parity_and_metrics(task: str) -> None:
    path = shipped(task)
    assert path.stat().st_size <= 2_500_000
    meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
    spec = StreamSpec.from_metadata(meta.custom_metadata_map)
    assert spec.task["name"] == task
    parity, metrics = spec.provenance["parity"], spec.provenance["metrics"]
    assert parity["steps"] >= 500 and parity["max_abs"] <= 1e-3, parity  # logits; the state stays within ~1e-6
    assert metrics, "the checkpoint's task metrics are missing"
    assert len(spec.provenance["checkpoint_sha256"]) == 64


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = out.glob("edgernn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for task in TASKS:
        if (MODELS / f"{task}.onnx").is_file():
            assert f"edgernn/runtime/models/{task}.onnx" in names
    assert "edgernn/runtime/apps/suggest.py" in names
    zipfile.ZipFile(wheel).extractall(out / "site")
    return out / "site"


def test_installed_wheel_runs_the_apps_without_torch(unpacked_wheel: Path) -> None:
    """``python -S``: no .pth files, so the editable checkout is invisible; only the wheel and numpy/onnxruntime."""
    shipped("langid")
    code = (
        "import sys\n"
        f"sys.path[:0] = [{str(unpacked_wheel)!r}] + {site.getsitepackages()!r}\n"
        "for name in ('torch', 'onnx', 'safetensors'):\n"
        "    sys.modules[name] = None\n"
        "import edgernn\n"
        f"assert edgernn.__file__.startswith({str(unpacked_wheel)!r}), edgernn.__file__\n"
        "from edgernn.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code, "run", "langid", "--final"],
        input="Pourriez-vous me dire où se trouve la gare la plus proche ?\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    _, answer, ranked = proc.stdout.split("\t")
    assert answer == "fr" and ranked.startswith("fr "), proc.stdout  # the answer, then the top three


@pytest.mark.parametrize("module", ["textgen", "suggest", "langid", "weather"])
def test_app_docstring_examples_run(module: str) -> None:
    import doctest
    import importlib

    for task in TASKS:
        shipped(task)
    result = doctest.testmod(importlib.import_module(f"edgernn.runtime.apps.{module}"))
    assert result.attempted >= 3 and result.failed == 0
