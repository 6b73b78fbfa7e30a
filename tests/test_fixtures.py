"""The committed ONNX fixtures of tests/edge/ are what their script makes, byte for byte."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parent / "fixtures" / "make_fixtures.py"


def test_every_fixture_regenerates_byte_identical() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "every fixture regenerates byte-identical"
