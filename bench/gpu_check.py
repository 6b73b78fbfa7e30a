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
    # calls 1-3: run `ls .whl` carrying .whl/ortgpu.part00, then part01, then part02 (one per call)
    # call 4, carrying .whl/ortgpu.part03:
    cat .whl/ortgpu.part0? > /tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl &&
      python3 -m pip install -q --no-index --no-deps --target /tmp/site /tmp/onnxruntime_gpu-*.whl &&
      PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 python3 bench/gpu_check.py --out $OUT/gpu-check.json

Then commit the figures (docs/ARCHITECTURE.md, "Measured") and close issue 6's GPU part.
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


def parity(model: Any, path: Path, batch: int, steps: int) -> dict[str, float]:
    """Max |diff| over ``steps`` carried steps: CUDA streams vs the CPU provider (batch 1) and vs PyTorch on GPU."""
    import numpy as np
    import torch

    from edgernn.devices.cuda import CudaStream
    from edgernn.devices.placement import load_engine
    from edgernn.runtime.engine import Engine

    rng = np.random.default_rng(1)
    xs = rng.standard_normal((steps, batch, FEATURES)).astype(np.float32)
    dev = torch.device("cuda")
    m = model.to(dev)
    with torch.inference_mode():
        h = m.initial_state(batch, dev)
        ref_torch = []
        for x in xs:
            y, h = m.step(torch.from_numpy(x).to(dev), h)
            ref_torch.append(y.cpu().numpy())
    ref_t = np.stack(ref_torch)
    out: dict[str, float] = {}
    if batch == 1:
        cpu = Engine.load(path).stream()
        ref_cpu = np.stack([cpu.step(x[0]) for x in xs])[:, None]
        out["torch-gpu_vs_cpu-ep"] = float(np.abs(ref_t - ref_cpu).max())
    for name in ("cuda", "cuda-graph"):
        engine, _ = load_engine(path, name)
        stream = CudaStream(engine, batch=batch)
        got = np.stack([stream.step(x[0] if batch == 1 else x) for x in xs])
        got = got[:, None] if batch == 1 else got
        out[f"{name}_vs_torch-gpu"] = float(np.abs(got - ref_t).max())
        if batch == 1:
            out[f"{name}_vs_cpu-ep"] = float(np.abs(got - ref_cpu).max())
    return out


def ort_latency(path: Path, batch: int, x: Any, calls: int, warmup: int) -> dict[str, Any]:
    import onnxruntime as ort

    from edgernn.devices.cuda import CudaStream
    from edgernn.devices.placement import load_engine
    from edgernn.runtime.engine import Engine
    from edgernn.runtime.latency import measure

    out: dict[str, Any] = {}
    frame = x[0] if batch == 1 else x
    for name in ("cuda", "cuda-graph"):
        engine, report = load_engine(path, name)
        stream = CudaStream(engine, batch=batch)
        out[f"ort-{name}"] = {**stats_dict(measure(lambda s=stream: s.step(frame), calls, warmup)),
                              "transfer": stream.transfer, "placement": report.summary()}  # fmt: skip
        if name == "cuda-graph":  # the run alone, no host copies: where the time goes
            out["ort-cuda-graph-run-only"] = stats_dict(measure(run_only(stream), calls, warmup))
    if batch == 1:
        cpu = Engine.load(path).stream()
        out["ort-cpu-ep"] = stats_dict(measure(lambda: cpu.step(frame), calls, warmup))
    out["onnxruntime"] = ort.__version__
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


def run_case(batch: int, hidden: int, tmp: Path, args: argparse.Namespace, results: dict[str, Any]) -> bool:
    """Parity and latency of one (batch, hidden) case, appended to ``results``; False if parity failed."""
    import numpy as np

    from edgernn.export.onnx_export import export_model

    model = gru_model(hidden)
    path = tmp / f"gru{hidden}.onnx"
    export_model(model, path, task={"name": "gpu-check", "vocabulary": ""})
    x = np.random.default_rng(0).standard_normal((batch, FEATURES)).astype(np.float32)
    case: dict[str, Any] = {"batch": batch, "hidden": hidden}
    results["cases"].append(case)
    case["parity"] = parity(model.cpu(), path, batch, args.steps)
    worst = max(case["parity"].values())
    case["parity_ok"] = worst <= 1e-4
    print(f"batch {batch} hidden {hidden}: parity max {worst:.2e}", flush=True)
    case["latency"] = lat = ort_latency(path, batch, x, args.calls, args.warmup)
    peers, _ = torch_peers(model.cpu(), batch, x, args.calls, args.warmup)
    lat.update(peers)
    ratio = lat["ort-cuda-graph"]["p50_us"] / peers["torch-graph-pinned"]["p50_us"]
    case["ratio_ort_graph_over_torch_graph"] = ratio
    case["target_met"] = ratio <= 1.0
    for k, v in lat.items():
        if isinstance(v, dict):
            print(f"  {k:<26} p50 {v['p50_us']:8.1f} µs  p99 {v['p99_us']:8.1f} µs")
    print(f"  ort cuda-graph / torch graph+pinned = {ratio:.2f} ({'target met' if ratio <= 1.0 else 'target NOT met'})",
          flush=True)  # fmt: skip
    return bool(case["parity_ok"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--out", default="build/gpu-check.json", help="where to write the figures (JSON)")
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--steps", type=int, default=200, help="carried steps for parity")
    p.add_argument("--no-tests", action="store_true", help="do not run tests/test_devices_cuda.py")
    args = p.parse_args(argv)
    extra_path = bootstrap()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    reason = skip_reason()
    if reason is not None:
        print(f"SKIP: {reason}")
        out.write_text(json.dumps({"skipped": reason}, indent=2) + "\n")
        return 0
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 against fp32 (the cuda profiles set use_tf32 = false)
    torch.backends.cudnn.allow_tf32 = False
    results: dict[str, Any] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cases": []}
    t0 = time.time()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for batch, hidden in CASES:
            try:
                failed |= not run_case(batch, hidden, Path(tmp), args, results)
            except Exception:  # noqa: BLE001 - one case failing must not lose the others' figures
                import traceback

                failed = True
                results["cases"].append({"batch": batch, "hidden": hidden, "error": traceback.format_exc()})
                print(f"batch {batch} hidden {hidden}: FAILED\n{traceback.format_exc()}")
            out.write_text(json.dumps(results, indent=2) + "\n")
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
