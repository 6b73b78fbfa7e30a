"""The whole GPU check in one go: placement, parity and per-step latency of the CUDA path vs PyTorch.

It lives in bench/, not devices/: it imports torch for the PyTorch peers, and devices/ (the
edge install) imports only numpy and onnxruntime.

Run from the repository root (no install needed; it finds the package itself):

    python3 bench/gpu_check.py --out build/gpu-check.json       # or: make gpu-check

Without a CUDA-capable onnxruntime and a GPU it prints ``SKIP: <reason>``, writes the reason
to ``--out`` and exits 0, so it is safe anywhere. With one it:

1. exports GRU models (frames in, 64 features, 1 layer, 64 outputs) at hidden 256 and 1024;
2. loads them with the ``cuda`` and ``cuda-graph`` profiles, strictly (placement reported);
3. checks parity over carried steps: the CUDA streams vs the CPU provider, and vs PyTorch on the GPU;
4. times one step, host frame in and host result out, at batch 1 / hidden 256 and
   batch 256 / hidden 1024: onnxruntime CUDA (state on the GPU, IOBinding), onnxruntime
   CUDA graphs (one graph per ping-pong direction, pinned buffers), the CPU provider (batch 1),
   PyTorch eager, and the strongest PyTorch peer — the step captured in a CUDA graph and
   replayed with pinned input/output buffers (and its replay alone);
5. runs ``tests/test_devices_cuda.py``.

The target (issue 6): onnxruntime CUDA graphs at or below the PyTorch CUDA-graph peer (ratio
<= 1.0) in both cases, without importing torch at run time (torch is only the peer here).

On a lent GPU machine (this workplace's device tool): its image has torch, onnx and the CUDA
13 libraries but the CPU ``onnxruntime``; ``onnxruntime-gpu`` 1.31.1 (CUDA 13, cp312,
243.7 MiB) must travel as a wheel, over the 64 MiB a call carries, so in four parts on one
warm machine (ignored paths stay there between calls; the machine goes back after ~30 s
idle, so make the calls back to back; the tree itself is ~1 MiB):

    echo /.whl/ >> .git/info/exclude; mkdir -p .whl
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 -d /tmp/w onnxruntime-gpu==1.31.1
    split -b 61m -d /tmp/w/onnxruntime_gpu-*.whl .whl/ortgpu.part    # part00 .. part03
    # calls 1-3, back to back, each carrying one part: cp .whl/ortgpu.part0N /root/
    # call 4, carrying .whl/ortgpu.part03:
    W=/tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
    cp .whl/ortgpu.part03 /root/ && cat /root/ortgpu.part0? > $W &&
      python3 -m pip install -q --no-index --no-deps --target /tmp/site $W &&
      PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 python3 bench/gpu_check.py --out $OUT/gpu-check.json

On an H200 (2026-11-26) the four calls cost about 90 s of device time, the check itself 62 s.
Copy the JSON to ``bench/results/gpu-check.json`` (add ``measured_at``): ``edgernn bench`` judges
the GPU target from it and writes its table into BENCHMARKS.md.

"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CASES = ((1, 256), (256, 1024))  # (batch, hidden)
FEATURES = 64
OUTPUTS = 64


def bootstrap() -> str:
    """Make ``import edgernn`` work from a plain checkout (the repository root is the package).

    The script's own folder leaves ``sys.path`` first, so no module of ours shadows a package
    that GPU libraries import. Returns the path to add to
    PYTHONPATH for subprocesses ('' when edgernn is installed).
    """
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    try:
        import edgernn  # noqa: F401
    except ImportError:
        link_dir = Path(tempfile.mkdtemp(prefix="edgernn-path-"))
        (link_dir / "edgernn").symlink_to(ROOT, target_is_directory=True)
        sys.path.insert(0, str(link_dir))
        return str(link_dir)
    return ""


def skip_reason() -> str | None:
    """Why the GPU check cannot run here, or None."""
    try:
        import onnxruntime as ort
    except ImportError:
        return f"onnxruntime is not installed for {sys.executable}"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return (
            f"onnxruntime {ort.__version__} here has no CUDAExecutionProvider "
            f"(providers: {', '.join(ort.get_available_providers())}); install onnxruntime-gpu on a GPU machine"
        )
    try:
        import torch
    except ImportError:
        return "torch is not installed: the PyTorch peers cannot be measured"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    return None


def gru_model(hidden: int) -> Any:
    import torch

    from edgernn.runtime.spec import ModelConfig
    from edgernn.train.model import build_model

    torch.manual_seed(0)
    cfg = ModelConfig(cell="gru", input_kind="frames", input_size=FEATURES, hidden_size=hidden, num_layers=1,
                      output_size=OUTPUTS)  # fmt: skip
    return build_model(cfg).eval()


def stats_dict(stats: Any) -> dict[str, float]:
    return {"p50_us": round(stats.p50_us, 2), "p99_us": round(stats.p99_us, 2), "min_us": round(stats.min_us, 2)}


def torch_peers(model: Any, batch: int, x: Any, calls: int, warmup: int) -> tuple[dict[str, Any], Any]:
    """PyTorch eager and CUDA-graph (pinned buffers) per-step latency; also the first outputs of both."""
    import torch

    from edgernn.runtime.latency import measure

    dev = torch.device("cuda")
    m = model.to(dev)
    out: dict[str, Any] = {}
    with torch.inference_mode():
        state = [m.initial_state(batch, dev)]

        def eager() -> Any:
            y, state[0] = m.step(torch.from_numpy(x).to(dev), state[0])
            return y.cpu().numpy()

        out["torch-eager"] = stats_dict(measure(eager, calls, warmup))
        static_x = torch.zeros((batch, FEATURES), device=dev)
        static_h = tuple(t.clone() for t in m.initial_state(batch, dev))
        pinned_x = torch.empty((batch, FEATURES), pin_memory=True)
        pinned_y = torch.empty((batch, OUTPUTS), pin_memory=True)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                m.step(static_x, static_h)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_y, new_h = m.step(static_x, static_h)
            for dst, src in zip(static_h, new_h):
                dst.copy_(src)
        px, py = pinned_x.numpy(), pinned_y.numpy()
        current = torch.cuda.current_stream()

        def graphed() -> Any:
            px[...] = x
            static_x.copy_(pinned_x, non_blocking=True)
            graph.replay()
            pinned_y.copy_(static_y, non_blocking=True)
            current.synchronize()
            return py.copy()

        def replay() -> None:
            graph.replay()
            current.synchronize()

        out["torch-graph-pinned"] = stats_dict(measure(graphed, calls, warmup))
        out["torch-graph-replay-only"] = stats_dict(measure(replay, calls, warmup))
    return out, m


def cuda_stream(path: Path, profile: str, batch: int, own_stream: bool = True) -> Any:
    """A CudaStream on ``profile``; ``own_stream=False`` leaves onnxruntime its own CUDA stream
    (no user_compute_stream: copies are synchronous cudaMemcpy from pinned memory)."""
    from edgernn.devices import cuda
    from edgernn.devices.placement import load_engine

    if not own_stream:
        cuda.stream_options = lambda provider, current: {}  # profiles.providers() looks it up per call
    engine, report = load_engine(path, profile)
    stage(f"{profile}: session on {engine.session.get_providers()}, placement {report.summary()}")
    stream = cuda.CudaStream(engine, lanes=batch)
    stage(f"{profile}: stream transfer={stream.transfer}")
    return stream, report


def stage(msg: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def part_parity(model: Any, path: Path, batch: int, steps: int, profile: str, own_stream: bool) -> dict[str, Any]:
    """Max |diff| over ``steps`` carried steps of one CUDA profile vs the CPU provider and vs PyTorch on the GPU."""
    import numpy as np
    import torch

    from edgernn.runtime.engine import Engine

    rng = np.random.default_rng(1)
    xs = rng.standard_normal((steps, batch, FEATURES)).astype(np.float32)
    dev = torch.device("cuda")
    m = model.to(dev)
    with torch.inference_mode():
        h = m.initial_state(batch, dev)
        ref = []
        for x in xs:
            y, h = m.step(torch.from_numpy(x).to(dev), h)
            ref.append(y.cpu().numpy())
    ref_t = np.stack(ref)  # (steps, batch, outputs)
    cpu = Engine.load(path)
    lanes = [cpu.stream() for _ in range(min(batch, 4))]  # the CPU reference on the first lanes (time)
    ref_cpu = np.stack([[lane.step(x[i]) for i, lane in enumerate(lanes)] for x in xs])
    stream, _ = cuda_stream(path, profile, batch, own_stream)
    got = []
    for i, x in enumerate(xs):
        got.append(stream.step(x[0] if batch == 1 else x))
        if i < 4:
            stage(f"step {i} done")
    g = np.stack(got).reshape(ref_t.shape)
    n = len(lanes)
    return {"vs_torch_gpu": float(np.abs(g - ref_t).max()), "vs_cpu_ep": float(np.abs(g[:, :n] - ref_cpu).max()),
            "torch_gpu_vs_cpu_ep": float(np.abs(ref_t[:, :n] - ref_cpu).max())}  # fmt: skip


def part_ort(path: Path, batch: int, x: Any, calls: int, warmup: int, profile: str, own_stream: bool) -> dict[str, Any]:
    import onnxruntime as ort

    from edgernn.runtime.engine import Engine
    from edgernn.runtime.latency import measure

    frame = x[0] if batch == 1 else x
    out: dict[str, Any] = {"onnxruntime": ort.__version__}
    if profile == "cpu":
        cpu = Engine.load(path).stream()
        out["latency"] = stats_dict(measure(lambda: cpu.step(frame), calls, warmup))
        return out
    stream, report = cuda_stream(path, profile, batch, own_stream)
    for i in range(5):  # the first calls warm up and capture the graphs: say how far they got
        stream.step(frame)
        stage(f"call {i} done")
    out["latency"] = stats_dict(measure(lambda: stream.step(frame), calls, warmup))
    out["transfer"] = stream.transfer
    out["placement"] = report.summary()
    if stream.graphs:  # the run alone, no host copies: where the time goes
        out["run_only"] = stats_dict(measure(run_only(stream), calls, warmup))
    return out


def run_only(stream: Any) -> Any:
    """One direction's graph replayed again and again (state is garbage; for timing only)."""
    session, io, ro = stream.engine.session, stream._bindings[0], stream._run_options[0]
    rt, cuda_stream = stream.rt, stream._cuda_stream

    def call() -> None:
        session.run_with_iobinding(io, ro)
        if rt is not None and cuda_stream:
            rt.synchronize(cuda_stream)

    return call


def run_tests(extra_path: str) -> dict[str, Any]:
    test = ROOT / "tests" / "test_devices_cuda.py"
    if not test.is_file():
        return {"skipped": f"{test} not found"}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (extra_path, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(test)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    return {"returncode": proc.returncode, "tail": (proc.stdout + proc.stderr)[-3000:]}


PARTS = (
    # (name, what, profile, own CUDA stream)
    ("parity cuda", "parity", "cuda", True),
    ("parity cuda-graph", "parity", "cuda-graph", True),
    ("ort-cuda", "ort", "cuda", True),
    ("ort-cuda-graph", "ort", "cuda-graph", True),
    ("ort-cuda-graph-ort-stream", "ort", "cuda-graph", False),
    ("ort-cpu-ep", "ort", "cpu", True),
    ("torch", "torch", "", True),
)


def run_part(args: argparse.Namespace) -> int:
    """One part of one case, in this process; its figures as JSON on the last line of stdout."""
    import numpy as np
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 against fp32 (the cuda profiles set use_tf32 = false)
    torch.backends.cudnn.allow_tf32 = False
    what, profile, own = args.part.split(":")
    batch, hidden, path = args.batch, args.hidden, Path(args.model)
    x = np.random.default_rng(0).standard_normal((batch, FEATURES)).astype(np.float32)
    if what == "parity":
        res: dict[str, Any] = part_parity(gru_model(hidden), path, batch, args.steps, profile, own == "1")
    elif what == "ort":
        res = part_ort(path, batch, x, args.calls, args.warmup, profile, own == "1")
    else:
        res, _ = torch_peers(gru_model(hidden), batch, x, args.calls, args.warmup)
    print("RESULT " + json.dumps(res), flush=True)
    return 0


def spawn_part(extra_path: str, part: tuple[str, str, str, bool], batch: int, hidden: int, model: Path,
               args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    name, what, profile, own = part
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (extra_path, os.environ.get("PYTHONPATH")) if p)}
    cmd = [sys.executable, "-X", "faulthandler", str(Path(__file__).resolve()),
           "--part", f"{what}:{profile}:{int(own)}", "--batch", str(batch), "--hidden", str(hidden),
           "--model", str(model), "--calls", str(args.calls),
           "--warmup", str(args.warmup), "--steps", str(args.steps)]  # fmt: skip
    t = time.time()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.part_timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return {"error": f"timed out after {args.part_timeout} s", "tail": out[-1500:]}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    print(f"-- {name} (batch {batch}, hidden {hidden}): rc {proc.returncode}, {time.time() - t:.1f} s", flush=True)
    if proc.returncode != 0 or not lines:
        tail = (proc.stdout[-1500:] + "\n" + proc.stderr[-2500:]).strip()
        print(tail, flush=True)
        return {"error": f"exit {proc.returncode}", "tail": tail}
    stages = [ln for ln in proc.stdout.splitlines() if ln.startswith("  [")]
    print("\n".join(stages[:3]), flush=True)
    return json.loads(lines[-1][len("RESULT ") :])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--out", default="build/gpu-check.json", help="where to write the figures (JSON)")
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--steps", type=int, default=200, help="carried steps for parity")
    p.add_argument("--no-tests", action="store_true", help="do not run tests/test_devices_cuda.py")
    p.add_argument("--part-timeout", type=int, default=120, help="seconds for each part's process")
    p.add_argument("--part", help=argparse.SUPPRESS)  # what:profile:own-stream, run in a child process
    p.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--hidden", type=int, default=256, help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    extra_path = bootstrap()
    if args.part:
        return run_part(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    reason = skip_reason()
    if reason is not None:
        print(f"SKIP: {reason}")
        out.write_text(json.dumps({"skipped": reason}, indent=2) + "\n")
        return 0
    import torch

    from edgernn.export.onnx_export import export_model

    results: dict[str, Any] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cases": []}
    t0 = time.time()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for batch, hidden in CASES:
            path = Path(tmp) / f"gru{hidden}.onnx"
            export_model(gru_model(hidden), path, task={"name": "gpu-check", "vocabulary": ""})
            case: dict[str, Any] = {"batch": batch, "hidden": hidden, "parts": {}}
            results["cases"].append(case)
            for part in PARTS:
                if part[2] == "cpu" and batch != 1:
                    continue
                case["parts"][part[0]] = res = spawn_part(extra_path, part, batch, hidden, path, args)
                failed |= "error" in res
                if part[1] == "parity" and "error" not in res:
                    worst = max(res.values())
                    res["ok"] = worst <= 1e-4
                    failed |= not res["ok"]
                    print(f"   parity max |diff| {worst:.2e} ({'ok' if res['ok'] else 'FAILED'})", flush=True)
                elif "latency" in res or part[1] == "torch":
                    for k, v in res.items() if part[1] == "torch" else [(part[0], res["latency"])]:
                        print(f"   {k:<28} p50 {v['p50_us']:8.1f} µs  p99 {v['p99_us']:8.1f} µs", flush=True)
                out.write_text(json.dumps(results, indent=2) + "\n")
            parts = case["parts"]
            peer = parts.get("torch", {}).get("torch-graph-pinned")
            ours = [parts[k]["latency"]["p50_us"] for k in ("ort-cuda-graph", "ort-cuda-graph-ort-stream")
                    if "latency" in parts.get(k, {})]  # fmt: skip
            if peer and ours:
                case["ratio_ort_graph_over_torch_graph"] = ratio = min(ours) / peer["p50_us"]
                case["target_met"] = ratio <= 1.0
                print(f"  best ort cuda-graph / torch graph+pinned = {ratio:.2f} "
                      f"({'target met' if ratio <= 1.0 else 'target NOT met'})", flush=True)  # fmt: skip
    if not args.no_tests:
        results["tests"] = run_tests(extra_path)
        print(results["tests"].get("tail", results["tests"].get("skipped", ""))[-1500:])
        failed |= results["tests"].get("returncode", 0) != 0
    results["seconds"] = round(time.time() - t0, 1)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {out} ({results['seconds']} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
