"""Recurrent models: Elman RNN, GRU and LSTM sharing one ModelConfig.

Each model maps inputs (batch, time) of token ids, or (batch, time, features) of real
frames, and a state tuple ((layers, batch, hidden) tensors: (h,) or (h, c)) to outputs
(batch, time, output_size) and the next state. ``step`` advances one frame.
"""

from __future__ import annotations

import torch
from torch import nn

from edgernn.runtime.spec import ModelConfig

State = tuple[torch.Tensor, ...]

_CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class RecurrentModel(nn.Module):
    """Input layer (embedding or linear) → stacked recurrent cell → linear head."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        width = config.embed_size or config.hidden_size
        if config.input_kind == "tokens":
            self.encoder: nn.Module = nn.Embedding(config.input_size, width)
        else:
            self.encoder = nn.Linear(config.input_size, width)
        kwargs = {"nonlinearity": "tanh"} if config.cell == "rnn" else {}
        self.rnn = _CELLS[config.cell](
            width,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
            **kwargs,
        )
        self.head = nn.Linear(config.hidden_size, config.output_size)

    def initial_state(self, batch: int, device: torch.device | None = None) -> State:
        shape = (self.config.num_layers, batch, self.config.hidden_size)  # (layers, batch, hidden)
        n = 2 if self.config.cell == "lstm" else 1
        return tuple(torch.zeros(shape, device=device) for _ in range(n))

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        if state is None:
            state = self.initial_state(x.shape[0], x.device)
        e = self.encoder(x)  # (batch, time, width)
        if self.config.cell == "lstm":
            out, (h, c) = self.rnn(e, (state[0], state[1]))  # (batch, time, hidden)
            new_state: State = (h, c)
        else:
            out, h = self.rnn(e, state[0])
            new_state = (h,)
        return self.head(out), new_state  # (batch, time, output_size)

    def step(self, x_t: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """One frame: x_t is (batch,) tokens or (batch, features); returns (batch, output_size)."""
        y, new_state = self.forward(x_t.unsqueeze(1), state)
        return y[:, 0], new_state


def build_model(config: ModelConfig) -> RecurrentModel:
    return RecurrentModel(config)
