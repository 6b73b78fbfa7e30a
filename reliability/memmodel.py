"""A small real decoder step with per-stream memory (spec version 3) for the spec and API fuzz.

A GRU over tokens whose output attends (dot product, masked) over the encoder outputs
``enc`` ``(batch, src_len, MEM)``, exported with the real torch exporter and a stream spec
that declares ``enc`` as memory with its mask, so the fuzzers mutate and call the memory
fields (``memory[].shape``, ``max_length``, ``mask``; ``engine.stream(memory=)``,
``set_memory``, ``reset(memory=)``) as they do every other part of the spec.

Example:
    >>> export(Path("/tmp/mem.onnx"))  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

VOCAB, EMBED, HIDDEN, MEM, MAX_LEN = 11, 8, 16, 12, 32


def export(path: Path, seed: int = 0) -> None:
    """Write the seeded decoder to ``path`` with its memory spec embedded (needs torch)."""
    import torch
    from torch import nn

    from edgernn.runtime.spec import BATCH, TIME, MemorySpec, StateSpec, StreamSpec, TensorSpec
    from edgernn.runtime.specfile import embed_spec

    class Decoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(VOCAB, EMBED)
            self.gru = nn.GRU(EMBED, HIDDEN, batch_first=True)
            self.key = nn.Linear(MEM, HIDDEN, bias=False)
            self.out = nn.Linear(HIDDEN + MEM, VOCAB)

        def forward(self, x: Any, h: Any, enc: Any, mask: Any) -> tuple[Any, Any]:
            q, h_out = self.gru(self.emb(x), h)  # (batch, time, hidden)
            scores = q @ self.key(enc).transpose(1, 2) + (mask[:, None, :] - 1.0) * 1e9  # (batch, time, src_len)
            ctx = torch.softmax(scores, dim=-1) @ enc  # (batch, time, mem)
            return self.out(torch.cat([q, ctx], dim=-1)), h_out

    torch.manual_seed(seed)
    model = Decoder().eval()
    args = (torch.zeros(2, 3, dtype=torch.long), torch.zeros(1, 2, HIDDEN), torch.randn(2, 5, MEM), torch.ones(2, 5))
    axes = {
        "x": {0: "batch", 1: "time"}, "h": {1: "batch"}, "enc": {0: "batch", 1: "src_len"},
        "enc_mask": {0: "batch", 1: "src_len"}, "y": {0: "batch", 1: "time"}, "h_out": {1: "batch"},
    }  # fmt: skip
    tmp = path.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():  # the exporter's notes on tracing and batch sizes (a batch-2 trace is meant)
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, args, str(tmp), input_names=["x", "h", "enc", "enc_mask"], output_names=["y", "h_out"],
            dynamic_axes=axes, opset_version=17, dynamo=False,
        )  # fmt: skip
    spec = StreamSpec(
        inputs=(TensorSpec("x", "int64", (BATCH, TIME)),),
        outputs=(TensorSpec("y", "float32", (BATCH, TIME, VOCAB)),),
        states=(StateSpec("h", "h_out", "float32", (1, BATCH, HIDDEN)),),
        memory=(MemorySpec("enc", "float32", (BATCH, "src_len", MEM), max_length=MAX_LEN, mask="enc_mask"),),
        task={"name": "reliability-memory"},
    )
    path.write_bytes(embed_spec(tmp.read_bytes(), spec))
    tmp.unlink()


def example_memory(spec: Any, length: int, rng: Any) -> dict[str, np.ndarray] | None:
    """A memory for every tensor of ``spec.memory`` (the length axis ``length`` long), or None without memory."""
    from edgernn.runtime.dtypes import NP_DTYPES

    memory = getattr(spec, "memory", ())
    if not memory:
        return None
    out = {}
    for m in memory:
        dims = [length if isinstance(d, str) else d for d in m.shape if d != "batch"]
        out[m.name] = (np.asarray(rng.random()) * np.ones(dims)).astype(NP_DTYPES[m.dtype])
    return out
