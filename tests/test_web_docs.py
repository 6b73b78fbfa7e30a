"""docs/WEB.md's commands, run as written: the three commands that put a model on a web page (the
server on a free port instead of 8000), then the page they serve, typed into in headless Chromium;
and the two that do it for a third-party model with the spec `edgernn spec` writes."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from webpage import need_browser, page

ROOT = Path(__file__).resolve().parents[1]
CLI = "import sys; from edgernn.cli import main; sys.exit(main())"


def blocks() -> list[list[list[str]]]:
    """The bash blocks of docs/WEB.md: commands (comments dropped) as argument lists."""
    text = (ROOT / "docs" / "WEB.md").read_text()
    out = []
    for body in re.findall(r"```bash\n(.*?)```", text, re.S):
        out.append([shlex.split(line, comments=True) for line in body.splitlines() if line.strip()])
    return out


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    if cmd[0] == "make":
        proc = subprocess.run([*cmd, "-s"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    else:
        assert cmd[0] == "edgernn", cmd
        proc = subprocess.run(
            [sys.executable, "-c", CLI, *cmd[1:]], cwd=cwd, capture_output=True, text=True, timeout=300
        )
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}"
    return proc


def workdir(tmp: Path) -> Path:
    """A folder that sees the repository's runtime/ and build/ (the docs' relative paths) and keeps sites out of it."""
    for name in ("runtime", "build"):
        (tmp / name).symlink_to(ROOT / name)
    return tmp


def test_three_commands_put_the_model_on_a_page(tmp_path: Path) -> None:
    need_browser()
    cwd = workdir(tmp_path)
    make, build, serve = blocks()[0]
    assert make == ["make", "web"] and build[:2] == ["edgernn", "web"] and serve[:3] == ["edgernn", "web", "serve"]
    run(make, cwd)
    run(build, cwd)
    port_at = serve.index("--port") + 1
    serve[port_at] = "0"  # any free port: other runs share this machine
    proc = subprocess.Popen([sys.executable, "-c", CLI, *serve[1:]], cwd=cwd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, line
        with urllib.request.urlopen(url.group(0)) as res:
            front = res.read().decode()
            assert res.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        assert 'href="textgen.html"' in front and 'href="stream.html"' in front
        state = page(url.group(0) + "textgen.html?text=And%20God%20sa", "document.body.dataset.ready === 'And God sa'",
                     "document.body.dataset.result", "docs-textgen.png")  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    words = [w["word"] for w in json.loads(state)["words"]]
    print(f"docs/WEB.md's three commands: {line.strip()}; the page completes 'And God sa' with {words}")
    assert words[0] == "said"


def test_a_third_party_model_with_its_spec(tmp_path: Path) -> None:
    from edgernn.bench.thirdparty_models import missing

    if "silero_vad" in missing():
        pytest.skip("silero_vad not fetched: run `make thirdparty`")
    need_browser()
    cwd = workdir(tmp_path)
    for cmd in blocks()[1]:
        run(cmd, cwd)
    site = json.loads((cwd / "vad-site" / "model.json").read_text())
    assert site["engine"]["window"] == 512 and site["spec"]["context"] == {"frames": 64, "input": "input"}
    assert {p.name for p in (cwd / "vad-site").iterdir()} >= {"stream.html", "index.html", "model.onnx"}
