"""Typed errors of the export step (all are EdgeRNNError, so the CLI prints them cleanly)."""

from __future__ import annotations

from edgernn.runtime.errors import EdgeRNNError, ParityError


class ExportError(EdgeRNNError):
    """The export cannot be written: output exists without --force, not writable, bad option."""


class QuantizeError(ExportError):
    """A graph cannot be quantized or converted (not an edgernn graph, unsupported cell)."""


class OutputNameError(ParityError):
    """Validation step 1: the graph's input/output names are not the ones the spec promises."""


class OutputShapeError(ParityError):
    """Validation step 2: an output's shape differs from the reference's."""


class OutputValueError(ParityError):
    """Validation step 3: an output's values differ from the reference's past the tolerance."""


class OutputExistsError(ExportError, FileExistsError):
    """The output exists and --force (``force=True``) was not given."""
