"""The translation memory file a TM-augmented translate model ships with (runtime/apps/translate_memory.py):
written and read back the same, the same bytes every time, and refused with a ModelLoadError naming the file
when it is missing, damaged, of another version or of another model. numpy only, like the runtime."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from edgernn.runtime.apps.translate_memory import SEPARATOR, TranslationMemory, encoder_text
from edgernn.runtime.errors import ModelLoadError

SOURCES = ["Delete file", "Open folder", "Close window", "Delete \ue000"]
TARGETS = ["Datei löschen", "Ordner öffnen", "Fenster schließen", "\ue000 löschen"]


def test_the_memory_file_round_trips_and_is_deterministic(tmp_path: Path) -> None:
    tm = TranslationMemory(SOURCES, TARGETS)
    size = tm.save(tmp_path / "a.json.gz")
    tm.save(tmp_path / "b.json.gz")
    assert (tmp_path / "a.json.gz").read_bytes() == (tmp_path / "b.json.gz").read_bytes()
    assert size == (tmp_path / "a.json.gz").stat().st_size
    back = TranslationMemory.load(tmp_path / "a.json.gz", tm.digest())
    assert (back.sources, back.targets) == (SOURCES, TARGETS)
    for text in ("delete files", "Open the folder", "Delete %s", "close"):
        assert back.nearest(text) == tm.nearest(text)
    assert back.translate("Delete \ue000!") == "\ue000 löschen"
    assert tm.nearest("Delete file", exclude=tm.postings["del"][:1]) == 3  # the excluded pair is never chosen
    assert encoder_text("Delete x", "x löschen") == f"Delete x{SEPARATOR}x löschen"


def _gz(path: Path, doc: object) -> Path:
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))
    return path


def test_a_missing_or_damaged_memory_is_a_typed_error_naming_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.json.gz"
    tm = TranslationMemory(SOURCES, TARGETS)
    tm.save(good)
    doc = json.loads(gzip.decompress(good.read_bytes()))
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(good.read_bytes()[:-9])
    plain = tmp_path / "plain.json.gz"
    plain.write_text("{}")
    cases = [
        (tmp_path / "absent.json.gz", "is missing"),
        (cut, "not a readable translation memory"),
        (plain, "not a readable translation memory"),
        (_gz(tmp_path / "v9.json.gz", {**doc, "version": 9}), "version 9"),
        (_gz(tmp_path / "list.json.gz", [1, 2]), "version 'list'"),
        (_gz(tmp_path / "short.json.gz", {**doc, "targets": TARGETS[:2]}), "equally long"),
        (_gz(tmp_path / "edited.json.gz", {**doc, "targets": ["x"] * 4}), "digest"),
    ]
    for path, says in cases:
        with pytest.raises(ModelLoadError, match=says) as err:
            TranslationMemory.load(path)
        assert str(path) in str(err.value)
    with pytest.raises(ModelLoadError, match="another model"):
        TranslationMemory.load(good, digest="0" * 64)
