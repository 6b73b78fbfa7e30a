"""Untrusted model files: build each fault, load it in a child process, and record what happened.

Every case gets its own folder ``<root>/<case>/model/`` (the model's folder) beside
``<root>/<case>/outside/`` holding a bait file that must never be opened. The child process
runs ``Engine.load`` and a few steps under an address-space limit (a memory bomb that
slipped through fails there instead of starving the machine), optionally under ``strace``
so every file the process (onnxruntime's C++ included) tries to open is seen.

A result is one of: ``typed`` (an EdgeRNNError subclass, the expected one or not),
``loaded`` (the file is valid and ran), ``untyped`` (another Python exception), ``crash``
(the process died: a signal, or no report), ``timeout``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgernn.reliability.fault_files import ANY_TYPED, Case, cases, mutants, pickle_bomb

__all__ = ["ANY_TYPED", "Case", "CaseResult", "cases", "pickle_bomb", "prepare", "run_all", "run_group", "run_mutants"]

CHILD_MEMORY_BYTES = 4 << 30

_CHILD = r"""
import json, os, resource, sys
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
opened = []
def hook(event, args):
    if event == "open" and args and isinstance(args[0], str):
        opened.append(args[0])
sys.addaudithook(hook)
from edgernn.runtime import Engine
from edgernn.runtime.errors import EdgeRNNError
import numpy as np
with open(sys.argv[1]) as fh:
    manifest = json.load(fh)
for name, path, value in manifest:
    print("@@" + json.dumps({"start": name}), flush=True)
    del opened[:]
    out = {"name": name}
    try:
        engine = Engine.load(path)
        stream = engine.stream()
        before = stream.state()
        x = np.full(engine.frame_shape, value, dtype=engine.input_dtype)
        try:
            out["outputs"] = [np.asarray(stream.step(x), dtype=float).ravel().tolist() for _ in range(3)]
        except EdgeRNNError as exc:  # at run: the state must be as before, and the stream still usable
            kept = all(np.array_equal(before[k], v) for k, v in stream.state().items())
            zero = np.zeros(engine.frame_shape, dtype=engine.input_dtype)
            stream.step(zero)
            # a push whose second chunk fails: the first chunk's progress must be rolled back
            mid = stream.state()
            try:
                stream.push(np.stack([zero, zero, x, zero]), chunk=2)
                rolled = "accepted"
            except EdgeRNNError:
                rolled = all(np.array_equal(mid[k], v) for k, v in stream.state().items())
            out.update(outcome="typed", error=type(exc).__name__,
                       message=f"at run, state unchanged: {kept}, the next step ran, a push failing in its "
                       f"second chunk rolled back: {rolled}: " + str(exc)[:300])
        else:
            out["outcome"] = "loaded"
            out["message"] = "ran 3 steps; the first output has %d values per frame" % len(out["outputs"][0])
    except EdgeRNNError as exc:
        out.update(outcome="typed", error=type(exc).__name__, message=str(exc))
    except Exception as exc:
        out.update(outcome="untyped", error=type(exc).__name__, message=str(exc)[:500])
    out["opened_py"] = list(opened)
    print("@@" + json.dumps(out), flush=True)
"""


@dataclass
class CaseResult:
    name: str
    fault: str
    expect: str
    outcome: str
    error: str = ""
    message: str = ""
    bait_opened: list[str] = field(default_factory=list)
    traced: bool = False
    seconds: float = 0.0
    outputs: list[list[float]] | None = None
    code_ran: bool = False  # the pickle case's marker file appeared

    @property
    def ok(self) -> bool:
        """As expected, no bait file opened, no code run."""
        if self.message.startswith("at run") and (
            "unchanged: False" in self.message or "back: True" not in self.message
        ):
            return False
        if self.bait_opened or self.code_ran or self.outcome in ("crash", "timeout", "untyped"):
            return False
        if self.expect == "loaded":
            return self.outcome == "loaded"
        if self.expect == ANY_TYPED:
            return self.outcome in ("typed", "loaded")
        return self.outcome == "typed" and self.error == self.expect

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


def prepare(case: Case, root: Path, base: onnx.ModelProto) -> tuple[Path, Path]:
    """Build ``case`` under ``root``: returns (the path to load, the bait file beside its folder)."""
    case_dir = root / case.name
    (case_dir / "model").mkdir(parents=True, exist_ok=True)
    bait = case_dir / "outside" / "bait.bin"
    bait.parent.mkdir(exist_ok=True)
    bait.write_bytes(np.arange(64, dtype=np.float32).tobytes())
    return case.build(case_dir, base), bait


def run_group(items: list[tuple[Case, Path, Path]], cwd: Path, strace: bool) -> dict[str, CaseResult]:
    """Load each (case, path, bait) in one child process, in order; a child that dies is restarted
    after the case it died on, which is reported as a crash."""
    results: dict[str, CaseResult] = {}
    pending = list(items)
    while pending:
        manifest = cwd / f".manifest-{len(results)}.json"
        manifest.write_text(json.dumps([[c.name, str(p.resolve()), c.value] for c, p, _ in pending]))
        trace = cwd / f".trace-{len(results)}.txt"
        cmd = [sys.executable, "-c", _CHILD, str(manifest), str(CHILD_MEMORY_BYTES)]
        if strace:
            cmd = ["strace", "-f", "-qq", "-e", "trace=open,openat,openat2,creat", "-o", str(trace), *cmd]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60 + 10 * len(pending))
            stdout, stderr, rc = proc.stdout, proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as exc:
            stdout, stderr, rc = str(exc.stdout or ""), "timeout", None
        seconds = (time.perf_counter() - t0) / max(1, len(pending))
        paths = _traced_paths(trace.read_text(errors="replace")) if strace and trace.exists() else []
        reports = [json.loads(ln[2:]) for ln in stdout.splitlines() if ln.startswith("@@")]
        done = {r["name"]: r for r in reports if "name" in r}
        started = [r["start"] for r in reports if "start" in r]
        for case, _, bait in pending:
            r = done.get(case.name)
            if r is None and (not started or case.name != started[-1]):
                continue
            res = CaseResult(case.name, case.fault, case.expect, "crash", traced=strace, seconds=seconds)
            res.code_ran = (bait.parent / "PWNED").exists()
            if r is None:
                res.outcome = "timeout" if rc is None else "crash"
                res.message = f"exit status {rc}: {stderr[-500:]}"
            else:
                res.outcome, res.error, res.message = r["outcome"], r.get("error", ""), r.get("message", "")
                res.outputs = r.get("outputs")
            seen = list(r.get("opened_py") or []) if r else []
            res.bait_opened = sorted({p for p in seen + paths if _is_bait(p, bait, cwd)})
            results[case.name] = res
        pending = [item for item in pending if item[0].name not in results]
    return results


def run_all(base: onnx.ModelProto, names: list[str] | None = None, strace: bool | None = None) -> list[CaseResult]:
    """Run every case (or those in ``names``) in fresh folders; returns one result per case.

    All cases share one child process (restarted after a crash), except those that must run
    in their bait folder. ``strace``: None traces when strace is installed.
    """
    chosen = [c for c in cases() if names is None or c.name in names]
    use = shutil.which("strace") is not None if strace is None else strace and shutil.which("strace") is not None
    with tempfile.TemporaryDirectory(prefix="edgernn-faults-") as tmp:
        root = Path(tmp)
        items = [(c, *prepare(c, root, base)) for c in chosen]
        results = run_group([i for i in items if not i[0].cwd_bait], root, use)
        for item in (i for i in items if i[0].cwd_bait):
            results.update(run_group([item], item[2].parent, use))
    return [results[c.name] for c in chosen]


def run_mutants(base: onnx.ModelProto, n: int, seed: int = 0) -> dict[str, Any]:
    """Load ``n`` random mutants of ``base`` (see ``fault_files.mutants``) in one child process
    (restarted after a crash): the count of each outcome, and the mutants that were not fine."""
    chosen = mutants(n, seed)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgernn-mutants-") as tmp:
        root = Path(tmp)
        items = [(c, *prepare(c, root, base)) for c in chosen]
        results = run_group(items, root, strace=False)
    counts: dict[str, int] = {}
    for r in results.values():
        key = r.error if r.outcome == "typed" else r.outcome
        counts[key] = counts.get(key, 0) + 1
    bad = [f"{r.name} ({r.fault}): {r.outcome} {r.error} {r.message[:200]}" for r in results.values() if not r.ok]
    return {"mutants": n, "outcomes": counts, "not_ok": bad, "seconds": time.perf_counter() - t0}


def _traced_paths(text: str) -> list[str]:
    """Paths in strace lines such as ``123 openat(AT_FDCWD, "x", O_RDONLY) = 3`` (failed tries included)."""
    out = []
    for line in text.splitlines():
        start = line.find('"')
        end = line.find('"', start + 1)
        if start >= 0 and end > start:
            out.append(line[start + 1 : end])
    return out


def _is_bait(path: str, bait: Path, cwd: Path) -> bool:
    full = Path(path) if os.path.isabs(path) else cwd / path
    return os.path.realpath(full) == os.path.realpath(bait)
