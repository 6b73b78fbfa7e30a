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
from edgernn.runtime.infer import HintError, infer_spec
from edgernn.runtime.protocol import StreamLike
from edgernn.runtime.spec import (
    SPEC_VERSION,
    ConstantSpec,
    ContextSpec,
    MemorySpec,
    StateSpec,
    StreamSpec,
    TensorSpec,
)

__all__ = [
    "Batch",
    "SPEC_VERSION",
    "CheckpointError",
    "ConstantSpec",
    "ContextSpec",
    "EdgeRNNError",
    "Engine",
    "HintError",
    "InputError",
    "MemorySpec",
    "ModelLoadError",
    "ParityError",
    "ProfileError",
    "RunError",
    "SnapshotError",
    "SpecError",
    "StateSpec",
    "Stream",
    "StreamError",
    "StreamLike",
    "StreamSpec",
    "TensorSpec",
    "infer_spec",
]
