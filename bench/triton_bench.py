"""The Triton twin through a real tritonserver, measured → BENCHMARKS-triton.md (``make triton-bench``).

- per-step latency (one frame per request, one sequence) over HTTP and gRPC vs the engine in
  process, timed in interleaved rounds in one run;
- throughput at 1, 16 and 64 concurrent sequences (one client thread each, gRPC) with the
  ``direct`` and ``oldest`` strategies, and the server's CPU seconds per step (tritonserver and
  its backend stubs, from /proc);
- resident memory of the server and of each Python-backend instance (stub process);
- the migration pause per sequence (snapshot on A + restore on B) when A is drained.

Client and server share the machine's cores: the figures are the whole loop on one host.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

from edgernn.export.triton import write_repository
from edgernn.export.triton_route import Router, TwinClient
from edgernn.export.triton_server import LocalTriton, TritonServerError
from edgernn.export.triton_twin import write_twin
from edgernn.runtime import Engine

MODEL = Path(__file__).resolve().parents[1] / "runtime" / "models" / "textgen.onnx"
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its direct children (the backend stubs)."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def rss_mib(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def latency(server: LocalTriton, rounds: int, per_round: int) -> dict[str, list[float]]:
    """µs per one-frame step: HTTP, gRPC and the engine in process, interleaved round by round."""
    engine = Engine.load(MODEL)
    clients = {
        "http": TwinClient(server.http_url, "char_twin"),
        "grpc": TwinClient(server.grpc_url, "char_twin", "grpc"),
    }
    stream = engine.stream()
    times: dict[str, list[float]] = {"http": [], "grpc": [], "engine": []}
    token = np.array([5], np.int64)
    for k, c in enumerate(clients.values()):
        c.step(90 + k, token, start=True)
    for _ in range(rounds):
        for k, (name, c) in enumerate(clients.items()):
            for _ in range(per_round):
                t0 = time.perf_counter()
                c.step(90 + k, token)
                times[name].append(1e6 * (time.perf_counter() - t0))
        for _ in range(per_round):
            t0 = time.perf_counter()
            stream.step(5)
            times["engine"].append(1e6 * (time.perf_counter() - t0))
    for k, c in enumerate(clients.values()):
        c.step(90 + k, token, end=True)
    return times


def throughput(server: LocalTriton, model: str, n: int, seconds: float) -> tuple[float, float, float]:
    """(steps/s, server CPU ms per step, p50 ms per request) with ``n`` sequences, one gRPC client thread each."""
    stop = threading.Event()
    counts = [0] * n
    lat: list[list[float]] = [[] for _ in range(n)]
    ready = threading.Barrier(n + 1)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        client = TwinClient(server.grpc_url, model, "grpc")
        corrid = 10_000 + i
        token = np.array([i % 78], np.int64)
        try:
            client.step(corrid, token, start=True)
            ready.wait(60)
            while not stop.is_set():
                t0 = time.perf_counter()
                client.step(corrid, token)
                lat[i].append(time.perf_counter() - t0)
                counts[i] += 1
            client.step(corrid, token, end=True)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            ready.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    ready.wait(60)
    if server.pid is None:
        raise TritonServerError("the server under test has no process")
    c0, t0 = cpu_seconds(server.pid), time.perf_counter()
    time.sleep(seconds)
    stop.set()
    c1, t1 = cpu_seconds(server.pid), time.perf_counter()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    steps = sum(counts)
    return steps / (t1 - t0), 1e3 * (c1 - c0) / max(steps, 1), 1e3 * statistics.median(x for v in lat for x in v)


def migration(a: LocalTriton, b: LocalTriton, protocol: str, n: int) -> list[float]:
    """Pause per sequence (ms) when ``n`` live sequences are drained from a to b."""
    urls = (a.http_url, b.http_url) if protocol == "http" else (a.grpc_url, b.grpc_url)
    router = Router([TwinClient(u, "char_twin", protocol) for u in urls])
    ids = [20_000 + i for i in range(4 * n) if router.ring.owner(20_000 + i) == urls[0]][:n]
    for c in ids:
        router.step(c, np.arange(8) % 78, start=True)
    router.drain(urls[0])
    for c in ids:
        router.step(c, np.array([1]), end=True)
    return [1e3 * router.pauses[c] for c in ids]


def run(venv: str, out: Path, seconds: float, rounds: int, per_round: int) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="edgernn-triton-bench-"))
    proto, spec = onnx.load(str(MODEL)), Engine.load(MODEL).spec
    write_repository(tmp, proto, spec, name="char")
    write_twin(tmp / "char_oldest_twin", proto, spec, "char_oldest_twin", strategy="oldest")
    a = LocalTriton(tmp, venv=venv, models=["char_twin", "char_oldest_twin"])
    b = LocalTriton(tmp, venv=venv, models=["char_twin"])
    try:
        a.start()
        b.start()
        if a.pid is None:
            raise TritonServerError("server A has no process")
        lat = latency(a, rounds, per_round)
        tput = {(m, n): throughput(a, m, n, seconds) for n in (1, 16, 64) for m in ("char_twin", "char_oldest_twin")}
        stubs = sorted(rss_mib(p) for p in _children(a.pid))
        server_mib = rss_mib(a.pid)
        pauses = {p: migration(a, b, p, 16) for p in ("http", "grpc")}
    finally:
        a.cleanup()
        b.cleanup()
    return render(lat, tput, server_mib, stubs, pauses, seconds)


def render(lat: dict[str, list[float]], tput: dict, server_mib: float, stubs: list[float],
           pauses: dict[str, list[float]], seconds: float) -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in _lscpu() if ln.startswith("Model name")), platform.processor())
    eng = statistics.median(lat["engine"])
    lines = [
        "# Triton twin through a real tritonserver",
        "",
        "Generated by `make triton-bench` (`bench/triton_bench.py`); do not edit by hand. Model: the shipped",
        "textgen (GRU, hidden 128, 78 tokens), one frame per request, served by the Python-backend twin",
        "(`<name>_twin`, the edgernn engine) on nvidia-pytriton's tritonserver 2.51, CPU only; clients are",
        "tritonclient 2.73 on the same host. See docs/TRITON.md.",
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores (client and server share them); {time.strftime('%Y-%m-%d %H:%M')}; "
        f"load average over the run's last minute {os.getloadavg()[0]:.1f} (other work on the machine competes "
        "for the cores: figures taken on a loaded machine are upper bounds for latency, lower for throughput).",
        "",
        "## Per-step latency (one sequence; HTTP, gRPC and the engine timed in interleaved rounds)",
        "",
        "| path | p50 µs | p99 µs | p50 / engine |",
        "|---|---:|---:|---:|",
    ]
    for name in ("engine", "http", "grpc"):
        v = lat[name]
        label = "engine in process (`Stream.step`)" if name == "engine" else f"tritonserver over {name.upper()}"
        lines.append(f"| {label} | {pct(v, 0.5):.1f} | {pct(v, 0.99):.1f} | {pct(v, 0.5) / eng:.0f}x |")
    lines += [
        "",
        f"## Throughput ({seconds:.0f} s per row; one gRPC client thread per sequence, each waits for its reply)",
        "",
        "| sequences | strategy | steps/s | server CPU ms / step | p50 ms / request |",
        "|---:|---|---:|---:|---:|",
    ]
    for (model, n), (rate, cpu_ms, p50) in tput.items():
        strategy = "oldest" if "oldest" in model else "direct"
        lines.append(f"| {n} | {strategy} | {rate:,.0f} | {cpu_ms:.3f} | {p50:.2f} |")
    lines += [
        "",
        "## Memory (resident, after the runs)",
        "",
        f"- tritonserver process: {server_mib:.0f} MiB",
        f"- per Python-backend instance (stub process, engine loaded): {', '.join(f'{m:.0f}' for m in stubs)} MiB",
        "",
        "## Migration pause per sequence (16 live sequences drained from server A to B: snapshot + restore)",
        "",
        "| protocol | median ms | max ms |",
        "|---|---:|---:|",
    ]
    for p, v in pauses.items():
        lines.append(f"| {p.upper()} | {statistics.median(v):.2f} | {max(v):.2f} |")
    return "\n".join(lines) + "\n"


def _lscpu() -> list[str]:
    try:
        return subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines()
    except OSError:
        return []


def main(argv: list[str] | None = None, run_fn: Callable[..., str] = run) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--venv", default=".venv-triton", help="the server venv (`make triton-venv` builds it)")
    p.add_argument("--out", default="BENCHMARKS-triton.md", help="the markdown file to write")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds per throughput row")
    p.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds")
    p.add_argument("--per-round", type=int, default=200, help="steps per path per latency round")
    args = p.parse_args(argv)
    text = run_fn(args.venv, Path(args.out), args.seconds, args.rounds, args.per_round)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
