"""Run ``edgernn`` in a subprocess the way an edge install does: torch, onnx and safetensors blocked."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parents[1] / "runtime" / "models"

BLOCKED_CLI = (
    "import sys\n"
    "for name in ('torch', 'onnx', 'safetensors'):\n"
    "    sys.modules[name] = None  # any import of it now raises ImportError\n"
    "from edgernn.cli import main\n"
    "sys.exit(main())\n"
)


def shipped(task: str) -> Path:
    path = MODELS / f"{task}.onnx"
    if not path.is_file():
        pytest.skip(f"the example {task} model is not built ({path}); run `make models`")
    return path


def edgernn(*args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``edgernn ARGS`` with torch blocked; fails the test with stderr when the exit status is not 0."""
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED_CLI, *args], input=stdin, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"edgernn {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
    return proc


def on_a_terminal(*args: str, keys: Sequence[str], read_s: float = 30) -> bytes:
    """``edgernn ARGS`` (torch blocked) on a pseudo-terminal: waits until the app reads keys one by
    one (cbreak mode), types ``keys`` 20 ms apart (keys that arrive together are split by the app),
    reads what it shows for up to ``read_s`` seconds, and returns it once the app exits with 0.
    POSIX only (callers skip on Windows)."""
    import pty
    import termios

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", BLOCKED_CLI, *args], stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    try:
        deadline = time.time() + 30
        while termios.tcgetattr(master)[3] & termios.ICANON:  # type only once the app reads keys one by one
            assert time.time() < deadline and proc.poll() is None, "the app never put the terminal in cbreak mode"
            time.sleep(0.05)
        for key in keys:
            os.write(master, key.encode())
            time.sleep(0.02)
        deadline = time.time() + read_s
        while time.time() < deadline:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the app exited and closed its side
                break
            if not chunk:
                break
            out += chunk
        assert proc.wait(timeout=20) == 0, out.decode(errors="replace")
    finally:
        os.close(master)
    return out
