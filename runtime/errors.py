"""Typed errors. Every message names the tensor, field or file, what was expected and what came."""

from __future__ import annotations


class EdgeRNNError(Exception):
    """Base class of every error edgernn raises on purpose."""


class SpecError(EdgeRNNError):
    """The stream spec is missing, malformed, of an unknown version, or disagrees with the graph."""


class ModelLoadError(EdgeRNNError):
    """The model file cannot be read or is not a valid ONNX graph."""


class InputError(EdgeRNNError, ValueError):
    """A frame, chunk or state given to the runtime has the wrong shape, dtype or values."""


class StreamError(EdgeRNNError):
    """A stream was used in a way its life cycle forbids (closed, foreign, busy)."""


class SnapshotError(EdgeRNNError):
    """A snapshot is corrupted, truncated or belongs to another model."""


class ParityError(EdgeRNNError):
    """An exported graph does not compute what PyTorch computed."""


class CheckpointError(EdgeRNNError):
    """A checkpoint is corrupted, foreign, or does not match the model config."""


class ProfileError(EdgeRNNError):
    """A device profile is malformed, or cannot run here."""


class RunError(EdgeRNNError):
    """onnxruntime failed while running a step; every stream's state is as it was before the call."""


class ArgumentError(InputError, TypeError):
    """A public call got an argument of the wrong type or out of its range (the message names
    the call and the argument); raised before any work, so nothing has changed."""
