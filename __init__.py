"""edgernn: train recurrent networks in PyTorch, export them as stateful ONNX graphs, stream them anywhere.

Subpackages: ``edgernn.runtime`` (numpy + onnxruntime only), ``edgernn.devices``,
``edgernn.export`` (torch, onnx), ``edgernn.train`` (torch).
"""

__version__ = "0.1.0"
