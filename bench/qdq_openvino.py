"""The static QDQ int8 form on the OpenVINO execution provider, against fp32 on the same provider.

For every shipped model (``runtime/models``, trained) and the bench's random-weight models, the
fp32 graph OpenVINO takes (``devices/openvino.toml``: the native op) and the QDQ int8 graph its
profile takes (``edgernn.export.qdq``, calibrated on the task's training data: the shipped model's
recipe ``shipped-<task>``; the bench models have no task, so random tokens, as the bench feeds
them) are compared on OpenVINO:

- parity: 1000 carried steps, one stream, on the input ``export --validate`` uses (text the model
  writes itself, random frames), the first output normalised as it does (softmax probabilities for
  token models, the fp32 RMS per channel for real outputs);
- the task metric: the task's own evaluation (``Task.evaluate``, what training reports), run on
  each ONNX graph through the engine on OpenVINO by ``OnnxModel`` (the shipped models);
- the speed: one step (batch 1 and 64), median of interleaved rounds, thread CPU time.

It needs onnxruntime-openvino and torch in one environment (``make openvino-qdq`` builds it) and
writes ``bench/results/qdq_openvino.md`` (+ .json); BENCHMARKS.md includes the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgernn.bench.committed import markdown_section

if TYPE_CHECKING:
    from edgernn.train.trainer import Task

RESULTS = Path(__file__).resolve().parent / "results" / "qdq_openvino.md"
HEADING = "## Static QDQ int8 on the OpenVINO execution provider"
# each task's headline metric (Task.evaluate's key) and whether lower is better
METRICS = {
    "textgen": ("valid_bpc", True),
    "music": ("valid_nll_per_event", True),
    "langid": ("acc@20", False),
    "weather": ("brier", True),
    "forecast": ("mase", True),
}
BENCH = (("rnn", 256), ("gru", 256), ("lstm", 256), ("rnn", 512), ("gru", 512), ("lstm", 512))


class OnnxModel:
    """A graph run by the engine's session, with ``RecurrentModel``'s call interface, so a task's own
    evaluation scores it: ``model(x, state, lengths) -> (outputs, state)``, one frame per call (the QDQ
    graph fixes time at 1; the fp32 graph is fed the same way), the state carried in one batched call."""

    training = False

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.spec = engine.spec
        self.names = [self.spec.outputs[0].name] + [s.output for s in self.spec.states]

    def eval(self) -> OnnxModel:
        return self

    def train(self, mode: bool = True) -> OnnxModel:
        return self

    def initial_state(self, batch: int, device: Any = None) -> tuple[Any, ...]:
        import torch

        return tuple(torch.from_numpy(np.full(s.concrete_shape(batch), s.init, s.dtype)) for s in self.spec.states)

    def __call__(self, x: Any, state: Any = None, lengths: Any = None) -> tuple[Any, tuple[Any, ...]]:
        import torch

        xs = x.numpy()
        batch, steps = xs.shape[:2]
        state = state if state is not None else self.initial_state(batch)
        feed = {s.input: np.ascontiguousarray(v.numpy()) for s, v in zip(self.spec.states, state)}
        last = None if lengths is None else lengths.numpy() - 1
        kept = {k: v.copy() for k, v in feed.items()}
        ys = []
        for t in range(steps):
            got = self.engine.session.run(self.names, {self.spec.inputs[0].name: xs[:, t : t + 1], **feed})
            ys.append(got[0])
            feed = {s.input: v for s, v in zip(self.spec.states, got[1:])}
            if last is not None:  # a padded sequence's state is the one after its last real frame
                for s in self.spec.states:
                    ax = s.batch_axis
                    hit = np.flatnonzero(last == t)
                    idx = [slice(None)] * feed[s.input].ndim
                    idx[ax] = hit
                    kept[s.input][tuple(idx)] = feed[s.input][tuple(idx)]
        out = kept if last is not None else feed
        states = tuple(torch.from_numpy(out[s.input]) for s in self.spec.states)
        return torch.from_numpy(np.concatenate(ys, axis=1)), states


def prepare(root: Path, only: list[str] | None = None) -> list[dict[str, Any]]:
    """fp32 (native) and QDQ graphs of every shipped model and bench model under ``root``."""
    import onnx

    from edgernn.bench.models import ModelKey, fp32_path
    from edgernn.export.onnx_export import write_model
    from edgernn.export.qdq import source_chunks
    from edgernn.export.quantize import convert_proto
    from edgernn.runtime.apps import MODELS_DIR
    from edgernn.train.tasks import build_task, recipe

    root.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[str, Path, tuple[list[tuple[np.ndarray, bool]], str], Task | None]] = []  # None: a bench model
    for task_name in METRICS:
        src = MODELS_DIR / f"{task_name}.onnx"
        if src.is_file() and (not only or task_name in only):
            cfg = recipe(f"shipped-{task_name}")
            shipped = build_task(cfg)
            data = (source_chunks(shipped.source), f"the {task_name} training data (recipe shipped-{task_name})")
            jobs.append((task_name, src, data, shipped))
    for cell, hidden in BENCH:
        if only and f"bench {cell} h{hidden}" not in only:
            continue
        rng = np.random.default_rng(0)
        data = ([(rng.integers(0, 64, (8, 512)), True)], "random tokens (random-weight bench model: no task)")
        jobs.append((f"bench {cell} h{hidden}", fp32_path(ModelKey(cell, hidden)), data, None))
    rows = []
    for name, src, (chunks, source), task in jobs:
        proto = onnx.load(str(src))
        slug = name.replace(" ", "-")
        fp32, qdq = root / f"{slug}.fp32.onnx", root / f"{slug}.qdq.onnx"
        write_model(proto, fp32, force=True)
        accurate = False
        for accurate in (False, True):  # export's choice: the fast form if it holds 2e-2, else the accurate
            out, spec = convert_proto(
                proto, "int8", int8_form="qdq", calibration=chunks, calibration_source=source, accurate=accurate
            )
            write_model(out, qdq, force=True)
            if _holds(fp32, qdq):
                break
        note = spec.provenance["quantization"]["calibration"]
        rows.append({"name": name, "fp32": fp32, "qdq": qdq, "task": task, "calibration": note, "accurate": accurate})
    return rows


def _holds(fp32: Path, qdq: Path, steps: int = 1000) -> bool:
    """Does the QDQ graph hold export's 2e-2 gate against fp32 (``compare_graphs`` on the CPU provider,
    export's own check, on its input: self-written text for token models, random frames)?"""
    from edgernn.export.errors import OutputValueError
    from edgernn.export.validate import compare_graphs, sample_from_graph
    from edgernn.runtime import Engine

    engine = Engine.load(fp32)
    if engine.vocab_size is not None:
        xs = sample_from_graph(fp32, steps, 3, seed=7)
    else:
        xs = np.random.default_rng(7).standard_normal((3, steps, *engine.frame_shape)).astype(np.float32)
    try:
        compare_graphs(fp32, qdq, xs, tolerance=2e-2)
    except OutputValueError:
        return False
    return True


def _frames(engine: Any, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if engine.vocab_size is not None:
        return rng.integers(0, engine.vocab_size, size=n, dtype=np.int64)
    return rng.standard_normal((n, *engine.frame_shape)).astype(np.float32)


def parity(fp32: Any, qdq: Any, path: Path, steps: int = 1000) -> float:
    """Max |fp32 - qdq| of the normalised first output over ``steps`` carried steps, one stream. The input
    is what ``export --validate`` feeds: for token models, text the fp32 model writes itself (random
    tokens are no sequence a trained model meets); for frame models, random frames."""
    from edgernn.export.validate import normaliser, sample_from_graph

    xs = sample_from_graph(path, steps, 1, seed=7)[0] if fp32.vocab_size is not None else _frames(fp32, steps, 1)
    a, b = fp32.stream(), qdq.stream()
    ref = np.stack([a.step(x) for x in xs])[None]
    got = np.stack([b.step(x) for x in xs])[None]
    name = fp32.spec.outputs[0].name
    norm = normaliser(fp32.spec, {name: ref})
    return float(np.abs(norm(name, got) - norm(name, ref)).max())


def speed(fp32: Any, qdq: Any, batch: int, calls: int = 200, rounds: int = 7) -> tuple[float, float]:
    """(fp32 µs, qdq µs) per one-frame call of ``batch`` streams: medians of interleaved rounds."""
    feeds = []
    for engine in (fp32, qdq):
        x = _frames(engine, batch, seed=2)[:, None]
        state = {s.input: np.full(s.concrete_shape(batch), s.init, s.dtype) for s in engine.spec.states}
        feeds.append((engine.session, {engine.spec.inputs[0].name: x, **state}))
    per: list[list[float]] = [[], []]
    for r in range(rounds):
        for i in (0, 1) if r % 2 == 0 else (1, 0):
            sess, feed = feeds[i]
            sess.run(None, feed)
            t = time.thread_time()
            for _ in range(calls):
                sess.run(None, feed)
            per[i].append((time.thread_time() - t) / calls * 1e6)
    return statistics.median(per[0]), statistics.median(per[1])


def measure(row: dict[str, Any], provider: str) -> dict[str, Any]:
    from edgernn.devices import load_engine

    fp32, report = load_engine(row["fp32"], provider)
    qdq, report_q = load_engine(row["qdq"], provider)
    placed = sorted(set(report.counts()) | set(report_q.counts()))
    out = {"name": row["name"], "placed": placed, "calibration": row["calibration"], "accurate": row["accurate"]}
    out["max_abs_normalised"] = parity(fp32, qdq, row["fp32"])
    for batch in (1, 64):
        out[f"fp32_us_b{batch}"], out[f"qdq_us_b{batch}"] = speed(fp32, qdq, batch)
    task = row["task"]
    if task is not None:
        key, _ = METRICS[task.name]
        a = task.evaluate(OnnxModel(fp32), None)[key]
        b = task.evaluate(OnnxModel(qdq), None)[key]
        out |= {"metric": key, "metric_fp32": a, "metric_qdq": b, "metric_rel": abs(b - a) / abs(a)}
    out["size_fp32"], out["size_qdq"] = row["fp32"].stat().st_size, row["qdq"].stat().st_size
    return out


def render(rows: list[dict[str, Any]], provider: str, load: tuple[float, float]) -> str:
    from edgernn.bench.overhead import cpu_name

    lines = [
        f"CPU: {cpu_name()}; provider {provider} (onnxruntime-openvino), 1 thread; thread CPU time, medians of"
        f" interleaved rounds; load average {load[0]:.1f}→{load[1]:.1f} on {os.cpu_count()} cores;"
        f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "| model | placed on | parity: max \\|fp32 - qdq\\| (normalised, 1000 carried steps) | task metric fp32"
        " → qdq (relative change) | fp32 µs b1 | qdq µs b1 | fp32 / qdq b1 | fp32 µs b64 | qdq µs b64"
        " | fp32 / qdq b64 | file MB fp32 → qdq |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        metric = "-"
        if "metric" in r:
            metric = f"{r['metric']} {r['metric_fp32']:.4g} → {r['metric_qdq']:.4g} ({100 * r['metric_rel']:.2f}%)"
        lines.append(
            f"| {r['name']}{' (accurate)' if r.get('accurate') else ''} | "
            f"{', '.join(p.replace('ExecutionProvider', '') for p in r['placed'])} | "
            f"{r['max_abs_normalised']:.2e} | {metric} | {r['fp32_us_b1']:.1f} | {r['qdq_us_b1']:.1f} | "
            f"{r['fp32_us_b1'] / r['qdq_us_b1']:.2f}x | {r['fp32_us_b64']:.0f} | {r['qdq_us_b64']:.0f} | "
            f"{r['fp32_us_b64'] / r['qdq_us_b64']:.2f}x | {r['size_fp32'] / 1e6:.2f} → {r['size_qdq'] / 1e6:.2f} |"
        )
    lines += [
        "",
        "fp32: the native-op graph (`devices/openvino.toml` form native); qdq: `edgernn export --quantize int8"
        " --int8-form qdq` (the openvino profile's int8 form), one step per call: the fast form (one int8 part"
        " per weight and activation) where it holds export's 2e-2 gate, else *(accurate)*, the form export"
        " falls back to (two parts each, three products per weight). Calibration: "
        + "; ".join(sorted({r["calibration"]["source"] for r in rows}))
        + ". The task metric is the task's own evaluation (what `edgernn train` reports) run on each graph"
        " through OpenVINO one frame per call.",
    ]
    return "\n".join(lines) + "\n"


def section() -> str:
    """The BENCHMARKS.md section: the committed table, or nothing."""
    return markdown_section(HEADING, RESULTS, "`make openvino-qdq` regenerates it.")


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="build/qdq-models", help="where the fp32 and QDQ graphs are written")
    p.add_argument("--provider", default="openvino", help="the device profile to measure on")
    p.add_argument("--only", nargs="*", help="model names to measure (default: all)")
    p.add_argument("-o", "--out", default=str(RESULTS))
    args = p.parse_args(argv)
    if args.provider == "openvino" and "OpenVINOExecutionProvider" not in ort.get_available_providers():
        print("OpenVINOExecutionProvider is not in this onnxruntime: run `make openvino-qdq` (its own venv)")
        return 2
    load0 = os.getloadavg()[0]
    rows = prepare(Path(args.models), args.only)
    measured = []
    for r in rows:
        measured.append(measure(r, args.provider))
        print(json.dumps({k: v for k, v in measured[-1].items() if k != "calibration"}, default=str))
    out = Path(args.out)
    if args.only and out.with_suffix(".json").is_file():  # a partial rerun replaces its rows, keeps the others
        kept = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
        fresh = {r["name"]: r for r in measured}
        measured = [fresh.pop(r["name"], r) for r in kept] + list(fresh.values())
    out.write_text(render(measured, args.provider, (load0, os.getloadavg()[0])), encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(measured, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
