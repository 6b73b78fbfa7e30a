"""Models exported before spec version 3 (per-stream memory) load and run the same on the edge install.

``tests/fixtures/gru-tokens-spec-v2.onnx`` is ``gru-tokens.onnx`` as the exporter wrote it at
spec version 2 (frozen: make_fixtures.py does not rewrite it); the regenerated fixture holds the
same weights under a version-3 spec.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgernn.runtime.engine import Engine
from edgernn.runtime.spec import SPEC_VERSION

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_a_version_2_model_loads_and_streams_like_its_version_3_twin() -> None:
    old_path, new_path = FIXTURES / "gru-tokens-spec-v2.onnx", FIXTURES / "gru-tokens.onnx"
    assert b'"version":2' in old_path.read_bytes() and b'"version":3' in new_path.read_bytes()
    old, new = Engine.load(old_path), Engine.load(new_path)
    assert old.spec == new.spec and old.spec.version == SPEC_VERSION == 3 and old.spec.memory == ()
    tokens = np.random.default_rng(0).integers(0, old.spec.model.input_size, 200)  # type: ignore[union-attr]
    a, b = old.stream(), new.stream()
    np.testing.assert_array_equal(a.push(tokens, chunk=32), b.push(tokens, chunk=32))
    np.testing.assert_array_equal(a.state()["h"], b.state()["h"])
    c = old.stream()
    c.restore(a.snapshot())  # the old model's snapshots: still format 2
    assert a.snapshot()[12:16] == (2).to_bytes(4, "little")
    np.testing.assert_array_equal(c.state()["h"], a.state()["h"])
