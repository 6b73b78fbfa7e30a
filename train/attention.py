"""Windowed causal self-attention as a streamed cell: the successor of the recurrent cells.

Each token attends to itself and the ``window`` tokens before it (ALiBi: a per-head penalty
linear in the distance stands in for positions, so nothing grows with the stream's length).
The state a stream carries is bounded: per layer a key and a value cache of the last
``window`` positions, and how many of those slots hold real tokens yet (0..window)::

    k, v : (layers, batch, window, hidden)   the newest position last (a shift register)
    pos  : (1, batch, 1)                      min(tokens seen, window), float32 (exact: <= window)

A chunk of T tokens attends over [cache | chunk] with a causal, windowed mask, then keeps the
last ``window`` keys and values: one graph serves a step (T = 1) and a chunk, as for the
recurrent cells, and training runs the same function on windows from an empty state.
Block: x + Attn(LN(x)), then x + MLP(LN(x)) (pre-norm Transformer), a final LN and the head.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

from edgernn.runtime.spec import ModelConfig

State = tuple[torch.Tensor, ...]


class WindowBlock(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads, self.dh = heads, d // heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        slopes = torch.tensor([2.0 ** (-8.0 * (i + 1) / heads) for i in range(heads)])
        self.register_buffer("slopes", slopes.view(1, heads, 1, 1), persistent=False)

    def forward(
        self, u: torch.Tensor, k0: torch.Tensor, v0: torch.Tensor, valid_from: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, d = u.shape
        w = k0.shape[1]
        q, k, v = self.qkv(self.ln1(u)).split(d, dim=-1)  # (batch, time, hidden) each
        keys = torch.cat([k0, k], dim=1)  # (batch, window + time, hidden)
        vals = torch.cat([v0, v], dim=1)

        def heads(z: torch.Tensor) -> torch.Tensor:
            return z.reshape(b, -1, self.heads, self.dh).transpose(1, 2)  # (batch, heads, n, dh)

        scores = heads(q) @ heads(keys).transpose(-1, -2) / math.sqrt(self.dh)  # (batch, heads, time, w + time)
        j = torch.arange(keys.shape[1], device=u.device).view(1, 1, 1, -1)
        i = torch.arange(t, device=u.device).view(1, 1, -1, 1) + w  # each query's index in [cache | chunk]
        dist = (i - j).to(scores.dtype)
        allowed = (dist >= 0) & (dist <= w) & (j.to(scores.dtype) >= valid_from.view(b, 1, 1, 1))
        scores = scores - cast(torch.Tensor, self.slopes) * dist  # a registered buffer
        scores = scores.masked_fill(~allowed, float("-inf"))
        att = torch.softmax(scores, dim=-1) @ heads(vals)  # (batch, heads, time, dh)
        u = u + self.out(att.transpose(1, 2).reshape(b, t, d))
        u = u + self.mlp(self.ln2(u))
        return u, keys[:, -w:], vals[:, -w:]


class AttentionModel(nn.Module):
    """Token embedding → windowed attention blocks → LN → head; the RecurrentModel interface.

    Example:
        >>> cfg = ModelConfig(cell="attention", input_kind="tokens", input_size=10, hidden_size=8,
        ...                   num_layers=2, output_size=10, window=4, heads=2)
        >>> model = AttentionModel(cfg)
        >>> y, state = model(torch.zeros(3, 5, dtype=torch.long))
        >>> tuple(y.shape), [tuple(s.shape) for s in state]
        ((3, 5, 10), [(2, 3, 4, 8), (2, 3, 4, 8), (1, 3, 1)])
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_size
        if config.input_kind == "tokens":
            self.encoder: nn.Module = nn.Embedding(config.input_size, d)
        else:
            self.encoder = nn.Linear(config.input_size, d)
        self.blocks = nn.ModuleList(WindowBlock(d, config.heads) for _ in range(config.num_layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.output_size)
        self.drop = nn.Dropout(config.dropout)

    def initial_state(self, batch: int, device: torch.device | None = None) -> State:
        c = self.config
        cache = (c.num_layers, batch, c.window, c.hidden_size)  # (layers, batch, window, hidden)
        return (torch.zeros(cache, device=device), torch.zeros(cache, device=device),
                torch.zeros(1, batch, 1, device=device))  # fmt: skip

    def forward(
        self, x: torch.Tensor, state: State | None = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        """Run a chunk; padding sits after each sequence's real steps and never reaches them
        (causal), so ``lengths`` needs no packing here: the returned state is the padded one."""
        if state is None:
            state = self.initial_state(x.shape[0], x.device)
        kc, vc, pos = state
        w = self.config.window
        valid_from = w - pos.reshape(-1)  # (batch,): cache slots before this are empty
        u = self.drop(self.encoder(x))  # (batch, time, hidden)
        ks, vs = [], []
        for layer, block in enumerate(self.blocks):
            u, k, v = block(u, kc[layer], vc[layer], valid_from)
            ks.append(k)
            vs.append(v)
        new_pos = torch.clamp(pos + x.shape[1], max=float(w))
        return self.head(self.drop(self.ln(u))), (torch.stack(ks), torch.stack(vs), new_pos)

    def step(self, x_t: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        y, new_state = self.forward(x_t.unsqueeze(1), state)
        return y[:, 0], new_state
