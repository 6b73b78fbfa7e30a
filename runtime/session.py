"""How the runtime gets an onnxruntime session: a small protocol that device profiles implement.

``edgernn.devices`` turns a TOML profile into an object with this shape; the runtime only
needs the protocol, so it never imports ``devices``. With no profile, ``CpuDefaults`` is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import onnxruntime as ort


class SessionProfile(Protocol):
    """What ``Engine.load`` needs from a device profile.

    Optional hook: a profile may also have ``stream_factory``, a callable ``(engine) -> stream``
    or None; ``Engine.stream()`` then uses it (``edgernn.devices.cuda`` keeps state on the GPU).
    """

    name: str
    device: str  # where state buffers live: "cpu" or "cuda"

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


def make_session(model: bytes, profile: SessionProfile) -> ort.InferenceSession:
    providers = profile.providers()
    return ort.InferenceSession(
        model,
        sess_options=profile.session_options(),
        providers=[name for name, _ in providers],
        provider_options=[opts for _, opts in providers],
    )
