"""A reader handed a FIFO must refuse it, not wait for a writer that never comes (issue 15).

Each check runs in a child with a timeout: a reader that opens the FIFO blocks forever (one of
them, safetensors', blocked holding the GIL, so no thread of the test could time it out).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def refusal_of_a_fifo(path: Path, module: str, call: str, error: str) -> str:
    """Makes a FIFO at ``path``, calls ``module.call(path)`` on it in a child and returns the
    message of the ``edgernn.runtime.errors.<error>`` it raised; fails the test on a hang, an
    exit status other than 0 or no refusal."""
    os.mkfifo(path)
    code = (
        "import sys\n"
        f"from {module} import {call}\n"
        f"from edgernn.runtime.errors import {error}\n"
        f"try:\n    {call}(sys.argv[1])\n"
        f"except {error} as exc:\n    print('refused:', exc)\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{call} waited on a FIFO")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("refused:"), done.stdout + done.stderr[-2000:]
    return done.stdout
