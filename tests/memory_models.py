"""A small real encoder–decoder step with attention over per-stream memory, for the memory tests.

``AttnDecoder`` is a GRU decoder whose outputs attend (Luong dot-product, through a learned
projection of the memory) over the encoder outputs ``enc`` ``(batch, src_len, M)`` with a
mask ``(batch, src_len)``: padded positions get -1e9 before the softmax, so their weight is
exactly 0 in float32. ``export`` writes it with ``torch.onnx.export(dynamo=False)`` (dynamic
batch, time and source length) and a stream spec that declares ``enc`` as memory.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgernn.runtime.spec import BATCH, TIME, MemorySpec, StateSpec, StreamSpec, TensorSpec
from edgernn.runtime.specfile import embed_spec

VOCAB, EMBED, HIDDEN, MEM = 11, 8, 16, 12
MAX_LEN = 32


class AttnDecoder(nn.Module):
    def __init__(self, masked: bool = True) -> None:
        super().__init__()
        self.masked = masked
        self.emb = nn.Embedding(VOCAB, EMBED)
        self.gru = nn.GRU(EMBED, HIDDEN, batch_first=True)
        self.key = nn.Linear(MEM, HIDDEN, bias=False)
        self.out = nn.Linear(HIDDEN + MEM, VOCAB)

    def forward(
        self, x: torch.Tensor, h: torch.Tensor, enc: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, h_out = self.gru(self.emb(x), h)  # (batch, time, hidden)
        scores = q @ self.key(enc).transpose(1, 2)  # (batch, time, src_len)
        if mask is not None:
            scores = scores + (mask[:, None, :] - 1.0) * 1e9
        attn = torch.softmax(scores, dim=-1)
        ctx = attn @ enc  # (batch, time, mem)
        return self.out(torch.cat([q, ctx], dim=-1)), h_out, attn


def spec(masked: bool = True, max_length: int = MAX_LEN) -> StreamSpec:
    return StreamSpec(
        inputs=(TensorSpec("x", "int64", (BATCH, TIME)),),
        outputs=(TensorSpec("y", "float32", (BATCH, TIME, VOCAB)),
                 TensorSpec("attn", "float32", (BATCH, TIME, "src_len"))),
        states=(StateSpec("h", "h_out", "float32", (1, BATCH, HIDDEN)),),
        memory=(MemorySpec("enc", "float32", (BATCH, "src_len", MEM), max_length=max_length,
                           mask="enc_mask" if masked else None),),
        task={"name": "memory-test"},
    )  # fmt: skip


def export(path: Path, masked: bool = True, seed: int = 0) -> AttnDecoder:
    """Export a seeded ``AttnDecoder`` to ``path`` with its spec in the metadata; return the torch module."""
    torch.manual_seed(seed)
    model = AttnDecoder(masked).eval()
    b, t, s = 2, 3, 5
    args: tuple[torch.Tensor, ...] = (
        torch.zeros(b, t, dtype=torch.long), torch.zeros(1, b, HIDDEN), torch.randn(b, s, MEM),
    )  # fmt: skip
    names = ["x", "h", "enc"]
    axes = {
        "x": {0: "batch", 1: "time"}, "h": {1: "batch"}, "enc": {0: "batch", 1: "src_len"},
        "y": {0: "batch", 1: "time"}, "h_out": {1: "batch"}, "attn": {0: "batch", 1: "time", 2: "src_len"},
    }  # fmt: skip
    if masked:
        args += (torch.ones(b, s),)
        names.append("enc_mask")
        axes["enc_mask"] = {0: "batch", 1: "src_len"}
    tmp = path.with_suffix(".tmp.onnx")
    torch.onnx.export(
        model, args, str(tmp), input_names=names, output_names=["y", "h_out", "attn"],
        dynamic_axes=axes, opset_version=17, dynamo=False,
    )  # fmt: skip
    path.write_bytes(embed_spec(tmp.read_bytes(), spec(masked)))
    tmp.unlink()
    return model


def reference(model: AttnDecoder, tokens: list[int], enc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The torch decoder alone over ``tokens`` with memory ``enc`` (src_len, M): logits and attention per step."""
    h = torch.zeros(1, 1, HIDDEN)
    ys, attns = [], []
    with torch.no_grad():
        for tok in tokens:
            mask = torch.ones(1, enc.shape[0]) if model.masked else None
            y, h, a = model(torch.tensor([[tok]]), h, enc[None], mask)
            ys.append(y[0, 0])
            attns.append(a[0, 0])
    return torch.stack(ys), torch.stack(attns)
