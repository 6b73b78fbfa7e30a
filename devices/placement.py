"""Which nodes run on which execution provider, and loading that refuses a silent fallback.

onnxruntime says where each node ran in its session profile: with ``enable_profiling`` every
node's kernel event carries ``args.provider`` and ``args.op_name`` (a subgraph that a provider
fused, e.g. ``OpenVINO-EP-subgraph_1``, shows as one node of that provider). ``load_engine``
turns profiling on for the first run only: it runs one probe call from the spec's initial
state, reads the events, then ``end_profiling()`` stops profiling (later calls pay nothing).

Example:
    >>> from edgernn.devices import load_engine                     # doctest: +SKIP
    >>> engine, report = load_engine("model.onnx", "openvino")       # doctest: +SKIP
    >>> print(report)                                                # doctest: +SKIP
    openvino: all 1 node(s) on the profile's providers
      OpenVINOExecutionProvider: 1 node(s): OpenVINO-EP-subgraph_1 (OpenVINO-EP-subgraph_1)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edgernn.devices.profiles import CPU_EP, DeviceProfile, ProviderEntry, load_profile
from edgernn.runtime.dtypes import NP_DTYPES
from edgernn.runtime.engine import Engine
from edgernn.runtime.errors import ArgumentError, ProfileError
from edgernn.runtime.spec import StreamSpec


class FallbackWarning(UserWarning):
    """Some nodes run on a provider the profile did not ask for (non-strict load)."""


@dataclass(frozen=True)
class NodePlacement:
    node: str
    op: str
    provider: str


def is_quantized_op(op: str) -> bool:
    """Operators that only an int8 model has (dynamic / static quantization, 4- and 8-bit MatMuls)."""
    return "Quant" in op or "Integer" in op or op.startswith("QLinear") or op == "MatMulNBits"


@dataclass(frozen=True)
class PlacementReport:
    """Where a profile's session placed each node, and whether that is what the profile asked for."""

    profile: str
    requested: tuple[str, ...]
    registered: tuple[str, ...]
    missing: tuple[tuple[str, str], ...]
    allowed: tuple[str, ...]
    nodes: tuple[NodePlacement, ...]
    precision: str = "fp32"
    problems: tuple[str, ...] = field(default=())
    allow_on_cpu: tuple[str, ...] = ()

    def is_fallback(self, n: NodePlacement) -> bool:
        """On a provider the profile did not list, unless it is the CPU running an op type the profile allows there."""
        if n.provider in self.allowed:
            return False
        return not (n.provider == CPU_EP and n.op in self.allow_on_cpu)

    @property
    def fallback_nodes(self) -> tuple[NodePlacement, ...]:
        return tuple(n for n in self.nodes if self.is_fallback(n))

    @property
    def quantized_nodes(self) -> tuple[NodePlacement, ...]:
        return tuple(n for n in self.nodes if is_quantized_op(n.op))

    @property
    def ok(self) -> bool:
        return not self.missing and not self.fallback_nodes and not self.problems

    def summary(self) -> str:
        """One line: what is wrong (missing providers, fallback nodes, precision), or that all is placed."""
        parts = [f"missing {name}" for name, _ in self.missing] + list(self.problems)
        fell: dict[str, int] = {}
        for n in self.fallback_nodes:
            fell[n.provider] = fell.get(n.provider, 0) + 1
        parts += [f"{k} node(s) fell back to {p}" for p, k in fell.items()]
        return "; ".join(parts) or f"all {len(self.nodes)} node(s) on {', '.join(self.allowed)}"

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for n in self.nodes:
            out[n.provider] = out.get(n.provider, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "ok": self.ok,
            "requested": list(self.requested),
            "registered": list(self.registered),
            "missing": [{"provider": p, "reason": r} for p, r in self.missing],
            "counts": self.counts(),
            "fallback_nodes": [n.__dict__ for n in self.fallback_nodes],
            "problems": list(self.problems),
        }

    def __str__(self) -> str:
        lines = []
        if self.ok:
            lines.append(f"{self.profile}: all {len(self.nodes)} node(s) on the profile's providers")
        else:
            lines.append(f"{self.profile}: NOT as requested ({', '.join(self.requested)})")
        for name, reason in self.missing:
            lines.append(f"  missing provider {name}: {reason}")
        for problem in self.problems:
            lines.append(f"  {problem}")
        by: dict[str, list[NodePlacement]] = {}
        for n in self.nodes:
            by.setdefault(n.provider, []).append(n)
        for provider, nodes in by.items():
            fell = sum(self.is_fallback(n) for n in nodes)
            mark = "" if not fell else "  <- fallback" if fell == len(nodes) else f"  <- {fell} fallback"
            shown = ", ".join(f"{n.node} ({n.op})" for n in nodes[:8])
            more = f", … {len(nodes) - 8} more" if len(nodes) > 8 else ""
            lines.append(f"  {provider}: {len(nodes)} node(s){mark}: {shown}{more}")
        return "\n".join(lines)


def probe_feeds(spec: StreamSpec) -> dict[str, np.ndarray]:
    """One call's worth of valid inputs: zero frames (token 0), the initial state, the constants."""
    feeds: dict[str, np.ndarray] = {}
    for t in spec.inputs:
        feeds[t.name] = np.zeros(t.concrete_shape(1, 1), dtype=NP_DTYPES[t.dtype])
    for s in spec.states:
        feeds[s.input] = np.full(s.concrete_shape(1), s.init, dtype=NP_DTYPES[s.dtype])
    for c in spec.constants:
        feeds[c.name] = np.asarray(c.value, dtype=NP_DTYPES[c.dtype]).reshape(c.shape)
    return feeds


def read_profile_events(path: str | os.PathLike[str]) -> list[NodePlacement]:
    """Node placements from an onnxruntime profile file (one per node name, in run order)."""
    with open(path, encoding="utf-8") as fh:
        events = json.load(fh)
    seen: dict[str, NodePlacement] = {}
    for ev in events:
        args: Mapping[str, Any] = ev.get("args") or {}
        name = str(ev.get("name", ""))
        if ev.get("cat") != "Node" or "provider" not in args or not name.endswith("_kernel_time"):
            continue
        node = name[: -len("_kernel_time")]
        seen.setdefault(node, NodePlacement(node, str(args.get("op_name", "?")), str(args["provider"])))
    return list(seen.values())


def probe_placement(engine: Engine, cuda_graph: bool = False) -> list[NodePlacement]:
    """Run one probe call on a session made with profiling on; return the placements, stop profiling."""
    ro = ort.RunOptions()
    if cuda_graph:
        ro.add_run_config_entry("gpu_graph_id", "-1")  # a probe must not capture a graph
    try:
        engine.session.run(None, probe_feeds(engine.spec), ro)
    finally:
        path = engine.session.end_profiling()
    if not path:
        raise ProfileError(f"{engine.source}: the session was not made with profiling on; no placement to read")
    try:
        return read_profile_events(path)
    finally:
        os.remove(path)


def _fallback_profile(profile: DeviceProfile, missing: list[tuple[str, str]]) -> DeviceProfile:
    """The profile less its missing providers, with the CPU provider last (what onnxruntime would do)."""
    gone = {name for name, _ in missing}
    kept = tuple(p for p in profile.provider_entries if p.name not in gone)
    if CPU_EP not in {p.name for p in kept}:
        kept += (ProviderEntry(CPU_EP),)
    on_gpu = any(p.name in ("CUDAExecutionProvider", "TensorrtExecutionProvider") for p in kept)
    return profile.with_changes(provider_entries=kept, device=profile.device if on_gpu else "cpu")


def resolve_profile(device: str | Path | DeviceProfile) -> DeviceProfile:
    return device if isinstance(device, DeviceProfile) else load_profile(device)


def load_engine(
    path: str | os.PathLike[str],
    device: str | Path | DeviceProfile = "cpu",
    *,
    strict: bool | None = None,
    spec: StreamSpec | None = None,
) -> tuple[Engine, PlacementReport]:
    """Load ``path`` with a device profile and report where its nodes run.

    ``strict`` (default: the profile's own, true for named non-CPU profiles) turns a missing
    provider, a node on a provider the profile did not list, or an int8 profile given a model
    with no quantized operator into a ``ProfileError`` carrying the report. Otherwise the same
    report comes back with a ``FallbackWarning``.
    """
    if strict is not None and not isinstance(strict, bool):
        raise ArgumentError(f"load_engine: strict must be True, False or None, got {strict!r:.60}")
    profile = resolve_profile(device)
    strict = profile.strict if strict is None else strict
    missing = profile.missing_providers()
    if missing and strict:
        here = ", ".join(ort.get_available_providers())
        why = "; ".join(f"{name}: {reason}" for name, reason in missing)
        raise ProfileError(
            f"profile {profile.name!r} needs {why}. Providers here: {here}. "
            "Pick another profile (edgernn devices) or load with strict=False to fall back, reported."
        )
    running = _fallback_profile(profile, missing) if missing else profile
    tmp = tempfile.mkdtemp(prefix="edgernn-placement-")
    try:
        engine = Engine.load(path, running.with_changes(profiling_prefix=os.path.join(tmp, "probe")), spec=spec)
        nodes = probe_placement(engine, running.cuda_graph)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    problems: list[str] = []
    registered = engine.session.get_providers()
    for name in running.provider_names:
        if name not in registered:  # onnxruntime drops a provider that fails to start and says nothing
            problems.append(f"{name} did not start in this session (a bad option or device?); it was dropped")
    quantized = [n for n in nodes if is_quantized_op(n.op)]
    if profile.precision == "int8" and not quantized:
        problems.append("precision int8, but the model has no quantized operator: export an int8 model for it")
    report = PlacementReport(
        profile=profile.name,
        requested=profile.provider_names,
        registered=tuple(registered),
        missing=tuple(missing),
        allowed=profile.allowed_providers(),
        allow_on_cpu=profile.allow_on_cpu,
        nodes=tuple(nodes),
        precision=profile.precision,
        problems=tuple(problems),
    )
    if not report.ok:
        if strict:
            where = os.fspath(path)
            raise ProfileError(f"{where}: profile {profile.name!r} (strict) refused: {report.summary()}\n{report}")
        warnings.warn(f"{os.fspath(path)}: {report}", FallbackWarning, stacklevel=2)
    return engine, report
