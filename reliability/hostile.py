"""Hostile-input surfaces run in child processes under limits: the runner and the outcome counts.

Each surface (``SURFACES``) is a module with ``setup(root, seed) -> ctx`` and
``run_case(ctx, i) -> str``, run inside a child process (``python -m
edgernn.reliability.hostile``) under an address-space limit. The child runs cases in order
and prints one JSON line per case: the outcome (``accepted``, a typed error's name, or
``untyped: ...`` when anything else escaped) and the RSS held after the case (after
``gc.collect()`` and glibc's ``malloc_trim(0)``) relative to the level before it. The parent
gives each case a timeout: a child that dies on a signal is an *abort* of the case it was
running, one that stops answering is a *hang*; either way the child is restarted at the next
case, so one bad case costs one case, not the surface.

Example:
    >>> res = run_surface("snapshot", cases=3, seed=0)  # doctest: +SKIP
    >>> res["untyped"], res["aborts"], res["hangs"]     # doctest: +SKIP
    (0, 0, 0)
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import resource
import selectors
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

SURFACES = {  # section name in the report and --skip -> module
    "spec-fuzz": "edgernn.reliability.specfuzz",
    "snapshot-fuzz": "edgernn.reliability.snapfuzz",
    "bombs": "edgernn.reliability.bombfuzz",
    "churn": "edgernn.reliability.churn",
    "cli-fuzz": "edgernn.reliability.clifuzz",
    "api-fuzz": "edgernn.reliability.apifuzz",
}
TIMEOUTS = {"churn": 60.0, "cli-fuzz": 90.0}  # per case, seconds (default 30)
ADDRESS_SPACE = 4 << 30  # each child's limit: a missed memory bomb fails here instead of taking the machine
RSS_TARGET_MIB = 10.0


def rss_mib() -> float:
    """This process's resident set after a full collection and ``malloc_trim(0)``."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def classify(exc: BaseException) -> str:
    """A typed error's class name; ``untyped: Type: message`` for anything else."""
    from edgernn.runtime.errors import EdgeRNNError

    if isinstance(exc, EdgeRNNError):
        return type(exc).__name__
    return f"untyped: {type(exc).__name__}: {str(exc)[:160]}"


def child_main(surface: str, root: str, seed: int, start: int, stop: int) -> None:
    """The child's loop: one JSON line per case on stdout ("begin" first, so the parent knows which case hung)."""
    import warnings

    import edgernn.runtime.errors  # noqa: F401  (imported before the first measurement, not inside a case)

    warnings.simplefilter("error")  # a warning a caller turned into an error must not escape untyped
    mod = importlib.import_module(SURFACES.get(surface, surface))  # or a module in the work folder (tests)
    out = sys.__stdout__
    ctx = mod.setup(Path(root), seed)
    if isinstance(ctx, dict):
        ctx.setdefault("total", stop)  # the run's size: a surface may order its cases by it (clifuzz)
    before = rss_mib()
    for i in range(start, stop):
        print(json.dumps({"begin": i}), file=out, flush=True)
        t0 = time.perf_counter()
        modules = len(sys.modules)
        outcome = _run(mod, ctx, i)
        cut = outcome.startswith(getattr(mod, "RESTART_AFTER", ()))  # cut short: this process is replaced
        after = rss_mib()  # also the level before the next case: one measurement per case
        held, before = after - before, after
        line: dict[str, Any] = {"i": i, "outcome": outcome}
        imported = len(sys.modules) - modules
        if imported > 0 and held > RSS_TARGET_MIB and not cut:
            # The case imported modules its surface's warm-up had not (a lazy import on a rare path):
            # a one-time cost, not memory the case holds. What the case holds is measured on a warm
            # repeat of it, from the level after the first run; the first run's growth is reported apart.
            line |= {"imported": imported, "first_held_mib": round(held, 2)}
            again = _run(mod, ctx, i)
            cut = again.startswith(getattr(mod, "RESTART_AFTER", ()))
            if again.startswith(("untyped", "wrong", "hang")) and not outcome.startswith(("untyped", "wrong")):
                line["outcome"] = outcome = again
            after = rss_mib()
            held, before = after - before, after
        line["held_mib"] = 0.0 if cut else round(held, 2)
        line["s"] = round(time.perf_counter() - t0, 3)
        print(json.dumps(line), file=out, flush=True)
        if cut and i + 1 < stop:
            print(json.dumps({"restart": i + 1}), file=out, flush=True)  # a case cut short: a fresh process
            return


def _run(mod: Any, ctx: Any, i: int) -> str:
    try:
        return str(mod.run_case(ctx, i))
    except Exception as exc:  # the finding itself: counted, never raised
        return classify(exc)


def _limits(address_space: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_surface(
    surface: str,
    cases: int,
    seed: int = 0,
    timeout: float | None = None,
    address_space: int = ADDRESS_SPACE,
    root: Path | None = None,
) -> dict[str, Any]:
    """Run ``cases`` cases of ``surface`` in children (restarted after an abort or a hang); the counts."""
    mod = importlib.import_module(SURFACES[surface]) if surface in SURFACES else None
    timeout = timeout or TIMEOUTS.get(surface, 30.0)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"edgernn-{surface}-") as tmp:
        work = root or Path(tmp)
        if mod is not None and hasattr(mod, "prepare"):
            mod.prepare(work, seed)  # in the parent: may need torch / onnx to build inputs
        results: dict[int, dict[str, Any]] = {}
        start, restarts = 0, 0
        while start < cases:
            done = _one_child(surface, work, seed, start, cases, timeout, address_space, results)
            start = done
            restarts += 1
    bad = ("untyped", "wrong", "hang")
    untyped = [
        f"case {i}: {r['outcome']}"
        for i, r in sorted(results.items())
        if r["outcome"].startswith(bad) and "detail" not in r
    ]
    died = [f"case {i}: {r['outcome']} ({r.get('detail', '')})" for i, r in results.items() if "detail" in r]
    outcomes = Counter(_group(r["outcome"]) for r in results.values())
    held = [r.get("held_mib", 0.0) for r in results.values()]
    repeats = [r for r in results.values() if "first_held_mib" in r]
    worst: tuple[Any, dict[str, Any]] = max(
        results.items(), key=lambda kv: kv[1].get("held_mib", 0.0), default=(None, {})
    )
    return {
        "cases": cases,
        "outcomes": dict(outcomes.most_common()),
        "untyped": sum(v for k, v in outcomes.items() if k.startswith("untyped")),
        "wrong": sum(v for k, v in outcomes.items() if k.startswith("wrong")),
        "aborts": outcomes.get("abort", 0),
        "hangs": sum(v for k, v in outcomes.items() if k.startswith("hang")),
        "examples": untyped[:8] + died[:8],
        "max_held_mib": round(max(held, default=0.0), 2),
        "worst_case": worst[0],
        "held_top": sorted(
            ([i, r.get("held_mib", 0.0), r["outcome"][:60]] for i, r in results.items()), key=lambda t: -t[1]
        )[:5],
        "children": restarts,
        "repeated": len(repeats),  # cases that imported modules and were measured again, warm
        "max_first_held_mib": round(max((r["first_held_mib"] for r in repeats), default=0.0), 2),
        "seconds": round(time.perf_counter() - t0, 1),
        "timeout_s": timeout,
        "address_space_gib": address_space / 2**30,
    }


def _group(outcome: str) -> str:
    """Outcomes counted by kind: a finding's details stay in the examples, not in the table's keys."""
    for kind in ("untyped", "wrong", "hang", "typed: "):
        if outcome.startswith(kind):
            return kind.rstrip(": ") if kind != "untyped" else outcome.split(" <- ")[0][:90]
    return outcome


def _one_child(
    surface: str,
    root: Path,
    seed: int,
    start: int,
    stop: int,
    timeout: float,
    address_space: int,
    results: dict[int, dict[str, Any]],
) -> int:
    """Run cases from ``start`` in one child until it ends; return the next case to run.

    The child's stderr goes to a file, not a pipe: a child that writes more than a pipe holds
    (library warnings, C++ logs) would otherwise block on it and read as a hang.
    """
    cmd = [sys.executable, "-m", "edgernn.reliability.hostile", surface, str(root), str(seed), str(start), str(stop)]
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=errors,
            stdin=subprocess.DEVNULL,
            cwd=root,
            preexec_fn=lambda: _limits(address_space),
        )
        try:
            return _drive(proc, errors, start, stop, timeout, results)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def _drive(
    proc: subprocess.Popen[bytes],
    errors: Any,
    start: int,
    stop: int,
    timeout: float,
    results: dict[int, dict[str, Any]],
) -> int:
    if proc.stdout is None:  # PIPE above
        raise OSError("the child's output pipe was not opened")
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    current, buf, begun = start, b"", False
    deadline = time.monotonic() + timeout * 3  # the first case also pays for imports and setup
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                results[current] = {"outcome": "hang", "detail": f"no answer in {timeout:g} s"}
                return current + 1
            if not sel.select(timeout=min(left, 1.0)):
                if proc.poll() is None:
                    continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                if "restart" in msg:  # the child exits; the finally of _one_child kills one that lingers
                    try:
                        proc.wait(timeout=timeout)
                    except subprocess.TimeoutExpired:
                        pass
                    return int(msg["restart"])
                if "begin" in msg:
                    current, begun = msg["begin"], True
                    deadline = time.monotonic() + timeout
                else:
                    results[msg["i"]] = msg
                    current = msg["i"] + 1
    finally:
        sel.close()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:  # closed its output but did not exit
        results[current] = {"outcome": "hang", "detail": f"did not exit within {timeout:g} s of its last case"}
        return current + 1 if current < stop else stop
    errors.seek(0)
    err = errors.read()[-4000:].decode("utf-8", "replace")
    if current >= stop and code == 0:
        return stop
    if not begun:  # the surface's setup failed: every case would fail the same way
        for i in range(start, stop):
            results[i] = {"outcome": "untyped: setup failed", "detail": err.strip()[-300:]}
        return stop
    if code < 0 or current < stop:
        what = f"signal {-code}" if code < 0 else f"exit {code}: {err.strip()[-300:]}"
        results[current] = {"outcome": "abort" if code < 0 else "untyped: child died", "detail": what}
        return current + 1
    return stop


if __name__ == "__main__":
    name, root_arg, seed_arg, start_arg, stop_arg = sys.argv[1:6]
    child_main(name, root_arg, int(seed_arg), int(start_arg), int(stop_arg))
