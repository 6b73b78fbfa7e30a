"""edgernn.bench: the comparison suite behind ``edgernn bench`` and BENCHMARKS.md.

Imports torch and onnx (to build and export the models it times) only inside functions, so
``edgernn --help`` stays light. The speed targets it checks live in ``bench/targets.toml``.
"""
