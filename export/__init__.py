"""edgernn.export: torch → ONNX with the stream spec, and parity checks. Needs torch and onnx.

Import from the submodules (``edgernn.export.pipeline``, ``edgernn.export.parity``, ...):
this package's ``__init__`` imports nothing, so ``edgernn --help`` works without torch.
"""
