"""edgernn.runtime: the stream spec, the Engine and its Streams. Imports numpy and onnxruntime only."""

from edgernn.runtime.batch import Batch
from edgernn.runtime.engine import Engine, Stream
from edgernn.runtime.errors import (
    CheckpointError,
    EdgeRNNError,
    InputError,
    ModelLoadError,
    ParityError,
    ProfileError,
    RunError,
    SnapshotError,
    SpecError,
    StreamError,
)
from edgernn.runtime.spec import SPEC_VERSION, StateSpec, StreamSpec, TensorSpec

__all__ = [
    "Batch",
    "SPEC_VERSION",
    "CheckpointError",
    "EdgeRNNError",
    "Engine",
    "InputError",
    "ModelLoadError",
    "ParityError",
    "ProfileError",
    "RunError",
    "SnapshotError",
    "SpecError",
    "StateSpec",
    "Stream",
    "StreamError",
    "StreamSpec",
    "TensorSpec",
]
