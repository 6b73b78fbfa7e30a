"""The README's Python example for the apps runs as written (torch blocked), on the shipped models."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from appcli import shipped

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_apps_example_runs_without_torch(tmp_path: Path) -> None:
    for task in ("textgen", "langid", "weather"):
        shipped(task)
    vega = pytest.importorskip("vega_datasets")
    csv = Path(vega.__file__).parent / "_data" / "seattle-weather.csv"
    (tmp_path / "seattle-weather.csv").write_bytes(csv.read_bytes())
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if "load_app" in b]
    code = "import sys\nsys.modules['torch'] = None\n" + code + "\nprint(words[0].word, top3[0][0], f.date)\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "said de 2016-01-01"
