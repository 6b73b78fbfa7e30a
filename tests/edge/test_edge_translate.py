"""The shipped translation model on the edge install (numpy + onnxruntime, no torch): `edgernn run
translate` streams greedy and beam translations, and bad input is refused with one line, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgernn.runtime.apps.translate import BOS, Translator
from edgernn.runtime.errors import InputError

MODEL = Path(__file__).resolve().parents[2] / "runtime" / "models" / "translate.onnx"
LINES = ["File not found", "Delete %(name)s", "Could not open file %s"]


@pytest.fixture(scope="module")
def tr() -> Translator:
    if not MODEL.is_file():
        pytest.skip(f"the example translate model is not built ({MODEL}); run `make models`")
    return Translator.load()


# the edge install has no torch / onnx; in the dev venv they are blocked, so an import of one fails here too
BLOCKED = (
    "import sys\n"
    "for name in ('torch', 'onnx', 'safetensors'):\n"
    "    sys.modules[name] = None\n"
    "from edgernn.cli import main\n"
    "sys.exit(main())\n"
)


def run(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCKED, "run", "translate", *args], input=stdin,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_run_translate_greedy_and_beam_on_the_shipped_model(tr: Translator) -> None:
    greedy = run(stdin="\n".join(LINES) + "\n")
    assert greedy.returncode == 0, greedy.stderr
    out = greedy.stdout.splitlines()
    assert out == [tr.translate(t) for t in LINES]
    assert "%(name)s" in out[1] and "%s" in out[2], out  # placeholders come back as they were
    beam = run("--beam", "4", stdin="\n".join(LINES) + "\n")
    assert beam.returncode == 0, beam.stderr
    assert beam.stdout.splitlines() == [tr.beam(t, 4) for t in LINES]
    print("\n".join(f"{s}  ->  {g}  |  beam: {b}" for s, g, b in zip(LINES, out, beam.stdout.splitlines())))


def test_bad_input_is_refused_without_traceback_and_the_stream_is_unchanged(tr: Translator) -> None:
    for args, stdin, says in ((("--to", "xx"), "Hello\n", "target language 'xx'"),
                              ((), "z" * 400 + "\n", "memory 'memory'")):  # fmt: skip
        proc = run(*args, stdin=stdin)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr and says in proc.stderr, proc.stderr
    stream, _ = tr.stream("File not found")
    stream.step(BOS)
    h = stream.state()["h"].copy()
    with pytest.raises(InputError, match="memory"):
        stream.set_memory({"memory": np.zeros((3, 7), np.float32)})
    assert np.array_equal(stream.state()["h"], h)


def test_the_shipped_models_translation_memory_is_read_and_its_absence_named(tr: Translator, tmp_path: Path) -> None:
    import shutil

    if not tr.decoder.spec.task.get("tm"):
        pytest.skip("the shipped translate model is not TM-augmented (spec.task.tm)")
    memory = MODEL.parent / tr.decoder.spec.task["translation_memory"]
    assert memory.is_file() and tr.tm is not None and len(tr.tm) == tr.decoder.spec.task["pairs"]["train"]
    print(f"{memory.name}: {memory.stat().st_size / 1e6:.2f} MB, {len(tr.tm)} pairs")
    marked, _ = tr.encoder_input("File not found")
    assert marked.startswith("File not found\ue0ff") and marked.endswith(tr.tm.translate("File not found"))
    for name in (MODEL.name, "translate-encoder.onnx"):
        shutil.copy(MODEL.parent / name, tmp_path / name)
    proc = run("--model", str(tmp_path / MODEL.name), stdin="File not found\n")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and memory.name in proc.stderr, proc.stderr
