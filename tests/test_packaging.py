"""The edge install: runtime, run and profile work while torch and onnx cannot be imported."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edgernn.cli import COMMANDS

# Every folder of the one import package: the library, then the tools beside it.
FOLDERS = ("runtime", "runtime/apps", "devices", "export", "train", "cli", "bench", "reliability", "web")

BLOCK = (
    "import sys\n"
    "for name in ('torch', 'onnx', 'safetensors'):\n"
    "    sys.modules[name] = None  # any import of it now raises ImportError\n"
)


def run_blocked(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True, timeout=120)


def test_runtime_imports_without_torch_or_onnx() -> None:
    proc = run_blocked(
        "import edgernn.runtime, edgernn.devices\nprint('ok', 'torch' in sys.modules and sys.modules['torch'])"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok None"


def test_blocking_really_blocks() -> None:
    proc = run_blocked("import edgernn.train.model")
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr or "ModuleNotFoundError" in proc.stderr


def test_run_and_profile_subcommands_without_torch(exported) -> None:
    _, path = exported["gru"]
    run = run_blocked(
        "from edgernn.cli import main\n"
        f"sys.exit(main(['run', 'textgen', '--model', {str(path)!r}, '--chars', '40', '--prompt', 'And']))"
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("And") and len(run.stdout.rstrip("\n")) >= 40
    prof = run_blocked(
        f"from edgernn.cli import main\nsys.exit(main(['profile', {str(path)!r}, '--calls', '200', '--warmup', '10']))"
    )
    assert prof.returncode == 0, prof.stderr
    assert "p50" in prof.stdout and "p99" in prof.stdout


def test_wheel_installs_one_package_named_edgernn(tmp_path: Path) -> None:
    """The wheel's top level holds edgernn/ and its dist-info only: no 'train', 'export', 'runtime'.

    Every module of every folder (library and tools) is in it, with the data files they read.
    """
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(repo),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("edgernn-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    top = {n.split("/")[0] for n in names}
    assert top == {"edgernn", wheel.name.split("-py3")[0] + ".dist-info"}, top
    for folder in FOLDERS:
        modules = sorted(p.name for p in (repo / folder).glob("*.py"))
        assert "__init__.py" in modules, folder
        missing = [m for m in modules if f"edgernn/{folder}/{m}" not in names]
        assert not missing, f"{folder}/: {missing} are not in the wheel"
    data = ["runtime/models/textgen.onnx", "devices/cpu.toml", "bench/targets.toml", "train/recipes.toml"]
    assert not [d for d in data if f"edgernn/{d}" not in names]
    assert not any(n.startswith(("edgernn/tests/", "edgernn/build/", "edgernn/examples/")) for n in names)


def test_make_lint_type_checks_every_folder() -> None:
    make = (Path(__file__).resolve().parents[1] / "Makefile").read_text(encoding="utf-8")
    (line,) = [line for line in make.splitlines() if line.startswith("MYPY_DIRS ?=")]
    checked = set(line.split("?=", 1)[1].split())
    assert checked == {f.split("/")[0] for f in FOLDERS}, line


def test_make_typecheck_resolves_the_package_in_any_checkout_folder(tmp_path: Path) -> None:
    """`make typecheck` (what `make lint` runs) checks edgernn.* imports against this checkout's files.

    A checkout folder not named edgernn (as CI's clone may be) holding the Makefile, the config, the
    runtime and a module whose call of the runtime is mistyped: mypy must see the mistake. With the
    import unresolved (the old `mypy runtime ...` from the checkout) it is Any and passes unseen.
    """
    repo = Path(__file__).resolve().parents[1]
    mypy = Path(sys.executable).parent / "mypy"
    if shutil.which("make") is None or not mypy.is_file():
        pytest.skip(f"needs make and {mypy} (the dev install)")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("Makefile", "pyproject.toml", "__init__.py", "runtime"):
        (checkout / name).symlink_to(repo / name)
    (checkout / "probe").mkdir()
    (checkout / "probe" / "__init__.py").write_text("", encoding="utf-8")
    (checkout / "probe" / "bad.py").write_text(
        "from edgernn.runtime.spec import StreamSpec\n\nspec: int = StreamSpec.from_metadata({}, 'probe')\n",
        encoding="utf-8",
    )
    venv = Path(sys.executable).parent.parent
    proc = subprocess.run(
        ["make", "-s", "-C", str(checkout), "typecheck", "MYPY_DIRS=probe", f"VENV={venv}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert 'edgernn/probe/bad.py:3: error: Incompatible types in assignment (expression has type "StreamSpec"' in out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_help_shows_an_example(command: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edgernn", command, "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "example:" in proc.stdout and f"edgernn {command}" in proc.stdout
