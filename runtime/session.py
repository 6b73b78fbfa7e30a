"""How the runtime gets an onnxruntime session: a small protocol that device profiles implement.

``edgernn.devices`` turns a TOML profile into an object with this shape; the runtime only
needs the protocol, so it never imports ``devices``. With no profile, ``CpuDefaults`` is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import onnxruntime as ort

from edgernn.runtime.dtypes import ONNX_CODE
from edgernn.runtime.protowire import BYTES, VARINT, WireError, iter_fields


class SessionProfile(Protocol):
    """What ``Engine.load`` needs from a device profile.

    Optional hook: a profile may also have ``stream_factory``, a callable ``(engine) -> stream``
    or None; ``Engine.stream()`` then uses it (``edgernn.devices.cuda`` keeps state on the GPU).
    """

    @property
    def name(self) -> str: ...

    @property
    def device(self) -> str: ...  # where state buffers live: "cpu" or "cuda"

    def session_options(self) -> ort.SessionOptions: ...

    def providers(self) -> list[tuple[str, dict[str, Any]]]: ...


@dataclass(frozen=True)
class CpuDefaults:
    """The default profile: CPU execution provider, one intra-op thread, all graph optimisations.

    One thread is the right default for a single batch-1 stream: a recurrent step is a
    chain of small matrix-vector products, and thread hand-off costs more than it saves.
    """

    threads: int = 1
    name: str = "cpu"
    device: str = "cpu"

    def session_options(self) -> ort.SessionOptions:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        return opts

    def providers(self) -> list[tuple[str, dict[str, Any]]]:
        return [("CPUExecutionProvider", {})]


def has_float16_weights(model: bytes) -> bool:
    """True when the main graph holds float16 initializers (an fp16 export)."""
    try:
        for top in iter_fields(model):
            if top.number != 7 or top.wire != BYTES:  # ModelProto.graph
                continue
            for g in iter_fields(top.payload):
                if g.number == 5 and g.wire == BYTES:  # GraphProto.initializer
                    for t in iter_fields(g.payload):
                        if t.number == 2 and t.wire == VARINT and t.value == ONNX_CODE["float16"]:  # data_type
                            return True
    except WireError:
        return False  # not readable here: onnxruntime reports it when it loads the bytes
    return False


def safe_options(model: bytes, opts: ort.SessionOptions, providers: list[str]) -> ort.SessionOptions:
    """Cap the optimisation level where onnxruntime is known to crash.

    onnxruntime 1.32 segfaults while optimising an fp16 RNN graph for the CPU provider at
    ORT_ENABLE_ALL (measured: GRU, LSTM and RNN exports, every time); ORT_ENABLE_EXTENDED
    loads and matches fp32. A crash would take the caller's process with it, so the level is
    lowered instead.
    """
    cpu_only = all(p == "CPUExecutionProvider" for p in providers)
    if (
        cpu_only
        and opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        and has_float16_weights(model)
    ):
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    return opts


def make_session(model: bytes, profile: SessionProfile) -> ort.InferenceSession:
    providers = profile.providers()
    names = [name for name, _ in providers]
    return ort.InferenceSession(
        model,
        sess_options=safe_options(model, profile.session_options(), names),
        providers=names,
        provider_options=[opts for _, opts in providers],
    )
