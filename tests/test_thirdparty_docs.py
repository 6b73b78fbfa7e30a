"""docs/THIRDPARTY.md as written: every spec block runs and equals the suite's, every message shown is today's."""

from __future__ import annotations

import re
import textwrap

import numpy as np
import onnxruntime as ort
import pytest

from edgernn.bench.thirdparty_models import MODELS, ROOT, BareLoop, by_key, missing, model_path
from edgernn.runtime.infer import HintError, infer_spec

DOC = ROOT / "docs" / "THIRDPARTY.md"
pytestmark = pytest.mark.skipif(
    bool(missing()), reason=f"third-party models not fetched ({', '.join(missing())}): run `make thirdparty`"
)


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_every_model_has_one_spec_block_that_runs_as_written(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # the blocks use paths relative to the repository root
    found = {}
    for code in blocks("python"):
        key = re.match(r"# thirdparty: (\w+)\n", code)
        assert key, f"a python block without its '# thirdparty: KEY' line:\n{code}"
        scope: dict = {}
        exec(code, scope)
        spec = scope["spec"] if "spec" in scope else scope["engine"].spec
        found[key.group(1)] = spec
    assert sorted(found) == sorted(m.key for m in MODELS)
    for key, spec in found.items():
        assert spec == infer_spec(model_path(key), **by_key(key).hints), key


@pytest.mark.parametrize("key", ["dtln_1", "gtcrn"])
def test_the_messages_shown_are_the_ones_infer_spec_gives(key, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(HintError) as info:
        infer_spec(f"build/thirdparty/{key}.onnx")
    assert str(info.value) + "\n" in blocks("text"), f"docs/THIRDPARTY.md shows another message for {key}"


def test_the_readme_third_party_example_runs_as_written(monkeypatch, capsys) -> None:
    readme = (ROOT / "README.md").read_text()
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "build/thirdparty/" in b]
    monkeypatch.chdir(ROOT)
    scope: dict = {}
    exec(textwrap.dedent(code), scope)
    assert capsys.readouterr().out.strip() == "(32, 1)"
    m = by_key("silero_vad")
    audio = np.concatenate([scope["audio"], np.zeros(32 * 512 - 16000, np.float32)])
    bare = ort.InferenceSession(str(model_path("silero_vad")), providers=["CPUExecutionProvider"])
    assert np.abs(scope["probs"].ravel() - BareLoop(bare, m.bare).run(audio, 512)).max() <= 1e-6
