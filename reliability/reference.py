"""A float64 numpy reference of our RNN / GRU / LSTM models: the yardstick for soak, fuzz and concurrency.

Written from the cell equations (PyTorch's gate order), not from the exported graph, so it
checks the graph rather than repeating it. Weights come from ``model.state_dict()`` as
numpy arrays; nothing here imports torch.

Example:
    >>> import numpy as np
    >>> from edgernn.runtime.spec import ModelConfig
    >>> cfg = ModelConfig(cell="rnn", input_kind="frames", input_size=2, hidden_size=3, num_layers=1, output_size=1)
    >>> w = {"encoder.weight": np.eye(3, 2), "encoder.bias": np.zeros(3), "rnn.weight_ih_l0": np.eye(3),
    ...      "rnn.weight_hh_l0": np.zeros((3, 3)), "rnn.bias_ih_l0": np.zeros(3), "rnn.bias_hh_l0": np.zeros(3),
    ...      "head.weight": np.ones((1, 3)), "head.bias": np.zeros(1)}
    >>> ref = Reference(w, cfg)
    >>> y, state = ref.step(np.array([[0.5, 0.0]]), ref.initial_state(1))
    >>> round(float(y[0, 0]), 6) == round(float(np.tanh(0.5)), 6)
    True
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edgernn.runtime.spec import ModelConfig

State = tuple[np.ndarray, ...]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # stable for any x


def cell_update(
    cell: str, gi: np.ndarray, gh: np.ndarray, h: np.ndarray, c: np.ndarray | None, ifo: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """One step of one layer: the cell equations, written once (PyTorch's gate order).

    ``gi`` / ``gh`` are the input and recurrent products with their biases, (..., gates * hidden);
    ``h`` / ``c`` (..., hidden). ``ifo`` is the LSTM's i, f, o gate rows (``ifo_rows``), passed
    in so a loop over time builds it once. Returns the next (h, c); c is None except for LSTM.
    """
    n = h.shape[-1]
    if cell == "rnn":
        return np.tanh(gi + gh), None
    if cell == "gru":
        rz = _sigmoid(gi[..., : 2 * n] + gh[..., : 2 * n])  # reset, update
        cand = np.tanh(gi[..., 2 * n :] + rz[..., :n] * gh[..., 2 * n :])
        return (1.0 - rz[..., n:]) * cand + rz[..., n:] * h, None
    a = gi + gh
    gates = _sigmoid(a[..., ifo if ifo is not None else ifo_rows(n)])  # i, f, o in one call; g apart
    c_next = gates[..., n : 2 * n] * c + gates[..., :n] * np.tanh(a[..., 2 * n : 3 * n])
    return gates[..., 2 * n :] * np.tanh(c_next), c_next


def ifo_rows(hidden: int) -> np.ndarray:
    """The rows of an LSTM's gate vector that are the sigmoid gates i, f, o (g, rows 2n-3n, apart)."""
    return np.r_[0 : 2 * hidden, 3 * hidden : 4 * hidden]


class Reference:
    """Steps a batch of independent streams; ``state`` is (h,) or (h, c), each (layers, batch, hidden).

    float64 by default (the yardstick for soak, fuzz and concurrency); the bench times the same
    code in float32 (``dtype=np.float32``) as its plain-numpy contender.
    """

    def __init__(self, weights: Mapping[str, np.ndarray], config: ModelConfig, dtype: type = np.float64) -> None:
        self.config = config
        self.dtype = dtype
        self.w: dict[str, np.ndarray] = {k: np.asarray(v, dtype=dtype) for k, v in weights.items()}
        self._ifo = ifo_rows(config.hidden_size)

    def initial_state(self, batch: int) -> State:
        cfg = self.config
        shape = (cfg.num_layers, batch, cfg.hidden_size)  # (layers, batch, hidden)
        return tuple(np.zeros(shape, self.dtype) for _ in range(2 if cfg.cell == "lstm" else 1))

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Token ids (...) or frames (..., features) → (..., width)."""
        if self.config.input_kind == "tokens":
            return self.w["encoder.weight"][np.asarray(x, dtype=np.int64)]
        return np.asarray(x, dtype=self.dtype) @ self.w["encoder.weight"].T + self.w["encoder.bias"]

    def step(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """One frame for every stream of the batch: returns (batch, output) and the next state."""
        inp = self.encode(x)  # (batch, width)
        hs, cs = [], []
        for k in range(self.config.num_layers):
            gi = inp @ self.w[f"rnn.weight_ih_l{k}"].T + self.w[f"rnn.bias_ih_l{k}"]  # (batch, gates * hidden)
            gh = state[0][k] @ self.w[f"rnn.weight_hh_l{k}"].T + self.w[f"rnn.bias_hh_l{k}"]
            c_k = state[1][k] if len(state) > 1 else None
            h, c = cell_update(self.config.cell, gi, gh, state[0][k], c_k, self._ifo)
            hs.append(h)
            if c is not None:
                cs.append(c)
            inp = h
        y = inp @ self.w["head.weight"].T + self.w["head.bias"]  # (batch, output)
        new: State = (np.stack(hs),) if not cs else (np.stack(hs), np.stack(cs))
        return y, new

    def sequences(self, xs: np.ndarray, state: State | None = None) -> tuple[np.ndarray, State]:
        """Every stream of the batch through ``xs.shape[1]`` frames: returns (batch, time, output), final state.

        Layer by layer: the input projections of a whole layer are one matrix product, so the
        loop over time holds only the recurrent product (the same sums as ``step``).
        """
        cfg = self.config
        xs = np.asarray(xs)
        batch, steps = xs.shape[:2]
        state = state if state is not None else self.initial_state(batch)
        if steps == 0:
            return np.zeros((batch, 0, cfg.output_size), self.dtype), state
        seq = self.encode(xs)  # (batch, time, width)
        hs, cs = [], []
        for k in range(cfg.num_layers):
            gi_all = seq @ self.w[f"rnn.weight_ih_l{k}"].T + self.w[f"rnn.bias_ih_l{k}"]  # (batch, time, gates*hidden)
            wh_t, bh = self.w[f"rnn.weight_hh_l{k}"].T, self.w[f"rnn.bias_hh_l{k}"]
            h, c = state[0][k], state[1][k] if cfg.cell == "lstm" else None
            out: np.ndarray = np.empty((batch, steps, cfg.hidden_size), self.dtype)
            for t in range(steps):
                h, c = cell_update(cfg.cell, gi_all[:, t], h @ wh_t + bh, h, c, self._ifo)
                out[:, t] = h
            hs.append(h)
            if c is not None:
                cs.append(c)
            seq = out
        y = seq @ self.w["head.weight"].T + self.w["head.bias"]  # (batch, time, output)
        return y, ((np.stack(hs),) if not cs else (np.stack(hs), np.stack(cs)))

    def run(self, xs: np.ndarray, state: State | None = None) -> tuple[np.ndarray, State]:
        """One stream through ``len(xs)`` frames: returns (time, output) and the final state."""
        y, state = self.sequences(np.asarray(xs)[None], state)
        return y[0], state


def weights_of(model: object) -> dict[str, np.ndarray]:
    """``model.state_dict()`` (a torch module) as float64 numpy arrays."""
    return {k: v.detach().cpu().double().numpy() for k, v in model.state_dict().items()}  # type: ignore[attr-defined]
