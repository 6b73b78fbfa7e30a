"""Recurrent models: Elman RNN, GRU and LSTM sharing one ModelConfig.

Each model maps inputs (batch, time) of token ids, or (batch, time, features) of real
frames, and a state tuple ((layers, batch, hidden) tensors: (h,) or (h, c)) to outputs
(batch, time, output_size) and the next state. ``step`` advances one frame.

The cells are ``torch.nn.RNN`` / ``GRU`` / ``LSTM`` so that the exporter emits the native
ONNX RNN / GRU / LSTM ops. The Elman cell is the textbook recurrence

    h_t = tanh(W_xh x_t + W_hh h_{t-1} + b),   y_t = W_hy h_t + b_y

with ``b = bias_ih + bias_hh`` (torch keeps the bias in two halves); ``elman_reference``
writes it out as a Python loop and a test checks that both agree given the same weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from edgernn.runtime.spec import ModelConfig

State = tuple[torch.Tensor, ...]

# (Callable, not type[nn.RNNBase]: RNNBase's own constructor takes a mode first)
_CELLS: dict[str, Callable[..., nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class RecurrentModel(nn.Module):
    """Input layer (embedding or linear) → stacked recurrent cell → linear head; dropout off the recurrence.

    Example:
        >>> cfg = ModelConfig(cell="gru", input_kind="tokens", input_size=10, hidden_size=8,
        ...                   num_layers=2, output_size=10)
        >>> model = RecurrentModel(cfg)
        >>> y, state = model(torch.zeros(3, 5, dtype=torch.long))
        >>> tuple(y.shape), tuple(state[0].shape)
        ((3, 5, 10), (2, 3, 8))
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        width = config.embed_size or config.hidden_size
        if config.input_kind == "tokens":
            self.encoder: nn.Module = nn.Embedding(config.input_size, width)
        else:
            self.encoder = nn.Linear(config.input_size, width)
        kwargs: dict[str, Any] = {"nonlinearity": "tanh"} if config.cell == "rnn" else {}
        self.rnn = _CELLS[config.cell](
            width,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
            **kwargs,
        )
        self.head = nn.Linear(config.hidden_size, config.output_size)
        # Dropout on the non-recurrent connections (Zaremba et al. 2014): the input to the cell,
        # between layers (inside the cell) and before the head. Identity in eval mode and in
        # the exported graph; the recurrent connection is never dropped.
        self.drop = nn.Dropout(config.dropout)
        if config.cell == "lstm":  # forget gate open at the start (Jozefowicz et al. 2015): gates i, f, g, o
            with torch.no_grad():
                for layer in range(config.num_layers):
                    getattr(self.rnn, f"bias_ih_l{layer}")[config.hidden_size : 2 * config.hidden_size].fill_(1.0)

    def initial_state(self, batch: int, device: torch.device | None = None) -> State:
        shape = (self.config.num_layers, batch, self.config.hidden_size)  # (layers, batch, hidden)
        n = 2 if self.config.cell == "lstm" else 1
        return tuple(torch.zeros(shape, device=device) for _ in range(n))

    def forward(
        self, x: torch.Tensor, state: State | None = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        """Run a chunk. ``lengths`` (batch,), when given, marks padded sequences: the returned
        state of each sequence is the one after its last real frame (packed sequences), and the
        outputs past a sequence's length are zeros of the head's bias. Padding never changes
        the outputs at real positions either way (the cells are causal)."""
        if state is None:
            state = self.initial_state(x.shape[0], x.device)
        e = self.drop(self.encoder(x))  # (batch, time, width)
        rnn_in: torch.Tensor | nn.utils.rnn.PackedSequence = e
        if lengths is not None:
            rnn_in = pack_padded_sequence(e, lengths.cpu(), batch_first=True, enforce_sorted=False)
        if self.config.cell == "lstm":
            out, (h, c) = self.rnn(rnn_in, (state[0], state[1]))
            new_state: State = (h, c)
        else:
            out, h = self.rnn(rnn_in, state[0])
            new_state = (h,)
        if lengths is not None:
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.head(self.drop(out)), new_state  # (batch, time, output_size)

    def step(self, x_t: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """One frame: x_t is (batch,) tokens or (batch, features); returns (batch, output_size)."""
        y, new_state = self.forward(x_t.unsqueeze(1), state)
        return y[:, 0], new_state


def build_model(config: ModelConfig) -> RecurrentModel:
    """The model ``config`` describes: a recurrent cell, or the windowed-attention cell."""
    if config.cell == "attention":
        from edgernn.train.attention import AttentionModel

        return cast(RecurrentModel, AttentionModel(config))  # the same interface
    return RecurrentModel(config)


def set_memory_bias(model: RecurrentModel, value: float) -> None:
    """Open the gate that keeps the state at initialisation: the LSTM's forget gate, the GRU's
    update gate z (h' = (1 - z) n + z h), in every layer, by setting its input bias to ``value``.

    With bias b the gate starts near sigmoid(b) (0.95 for b = 3), so the state, and the error
    signal flowing back through it, decays by that factor per step instead of ~0.5; long delays
    then train in hundreds of updates instead of sitting at chance (chrono initialisation, Tallec
    & Ollivier 2018, draws b from the delays expected). The Elman RNN has no gate: no effect.
    """
    cfg = model.config
    if cfg.cell in ("rnn", "attention"):
        return
    gate = slice(cfg.hidden_size, 2 * cfg.hidden_size)  # LSTM gates (i, f, g, o); GRU gates (r, z, n)
    with torch.no_grad():
        for layer in range(cfg.num_layers):
            getattr(model.rnn, f"bias_ih_l{layer}")[gate].fill_(value)


def elman_reference(model: RecurrentModel, x: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """The Elman RNN as the textbook loop, reading ``model``'s weights (cell 'rnn' only).

    h_t^l = tanh(W_xh^l u_t^l + W_hh^l h_{t-1}^l + b^l), u^0 = encoder(x), u^{l+1} = h^l,
    y_t = W_hy h_t^L + b_y. Returns y (batch, time, output_size). Slow: for tests.
    """
    if model.config.cell != "rnn":
        raise ValueError(f"elman_reference needs cell 'rnn', the model has {model.config.cell!r}")
    u = model.encoder(x)  # (batch, time, width)
    layers, hidden = model.config.num_layers, model.config.hidden_size
    h = h0 if h0 is not None else torch.zeros(layers, x.shape[0], hidden)
    for layer in range(layers):
        w_xh = getattr(model.rnn, f"weight_ih_l{layer}")
        w_hh = getattr(model.rnn, f"weight_hh_l{layer}")
        b = getattr(model.rnn, f"bias_ih_l{layer}") + getattr(model.rnn, f"bias_hh_l{layer}")
        h_t, outs = h[layer], []
        for t in range(u.shape[1]):
            h_t = torch.tanh(u[:, t] @ w_xh.T + h_t @ w_hh.T + b)  # (batch, hidden)
            outs.append(h_t)
        u = torch.stack(outs, dim=1)  # (batch, time, hidden)
    return model.head(u)
