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


class Reference:
    """Steps a batch of independent streams in float64; ``state`` is (h,) or (h, c), each (layers, batch, hidden)."""

    def __init__(self, weights: Mapping[str, np.ndarray], config: ModelConfig) -> None:
        self.config = config
        self.w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}

    def initial_state(self, batch: int) -> State:
        cfg = self.config
        shape = (cfg.num_layers, batch, cfg.hidden_size)  # (layers, batch, hidden)
        return tuple(np.zeros(shape) for _ in range(2 if cfg.cell == "lstm" else 1))

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(batch,) token ids or (batch, features) frames → (batch, width)."""
        if self.config.input_kind == "tokens":
            return self.w["encoder.weight"][np.asarray(x, dtype=np.int64)]
        return np.asarray(x, dtype=np.float64) @ self.w["encoder.weight"].T + self.w["encoder.bias"]

    def step(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """One frame for every stream of the batch: returns (batch, output) and the next state."""
        inp = self.encode(x)  # (batch, width)
        hs, cs = [], []
        for k in range(self.config.num_layers):
            wi, wh = self.w[f"rnn.weight_ih_l{k}"], self.w[f"rnn.weight_hh_l{k}"]
            gi = inp @ wi.T + self.w[f"rnn.bias_ih_l{k}"]  # (batch, gates * hidden)
            gh = state[0][k] @ wh.T + self.w[f"rnn.bias_hh_l{k}"]
            if self.config.cell == "rnn":
                h = np.tanh(gi + gh)
            elif self.config.cell == "gru":
                ir, iz, in_ = np.split(gi, 3, axis=1)
                hr, hz, hn = np.split(gh, 3, axis=1)
                r, z = _sigmoid(ir + hr), _sigmoid(iz + hz)
                n = np.tanh(in_ + r * hn)
                h = (1.0 - z) * n + z * state[0][k]
            else:
                i, f, g, o = np.split(gi + gh, 4, axis=1)
                c = _sigmoid(f) * state[1][k] + _sigmoid(i) * np.tanh(g)
                h = _sigmoid(o) * np.tanh(c)
                cs.append(c)
            hs.append(h)
            inp = h
        y = inp @ self.w["head.weight"].T + self.w["head.bias"]  # (batch, output)
        new: State = (np.stack(hs),) if not cs else (np.stack(hs), np.stack(cs))
        return y, new

    def run(self, xs: np.ndarray, state: State | None = None) -> tuple[np.ndarray, State]:
        """One stream through ``len(xs)`` frames: returns (time, output) and the final state.

        Layer by layer: the input projections of a whole layer are one matrix product, so the
        loop over time holds only the recurrent product (the same sums as ``step``).
        """
        cfg = self.config
        state = state if state is not None else self.initial_state(1)
        if len(xs) == 0:
            return np.zeros((0, cfg.output_size)), state
        seq = self.encode(np.asarray(xs))  # (time, width)
        hs, cs = [], []
        for k in range(cfg.num_layers):
            gi_all = seq @ self.w[f"rnn.weight_ih_l{k}"].T + self.w[f"rnn.bias_ih_l{k}"]  # (time, gates * hidden)
            wh_t, bh = self.w[f"rnn.weight_hh_l{k}"].T, self.w[f"rnn.bias_hh_l{k}"]
            h = state[0][k, 0]
            c = state[1][k, 0] if cfg.cell == "lstm" else h
            out = np.empty((len(seq), cfg.hidden_size))
            n = cfg.hidden_size
            ifo_rows = np.r_[0 : 2 * n, 3 * n : 4 * n]  # LSTM gates i, f, o (then g apart)
            for t in range(len(seq)):
                gi, gh = gi_all[t], h @ wh_t + bh
                if cfg.cell == "rnn":
                    h = np.tanh(gi + gh)
                elif cfg.cell == "gru":
                    rz = _sigmoid(gi[: 2 * n] + gh[: 2 * n])
                    h = (1.0 - rz[n:]) * np.tanh(gi[2 * n :] + rz[:n] * gh[2 * n :]) + rz[n:] * h
                else:
                    a = gi + gh
                    ifo = _sigmoid(a[ifo_rows])
                    c = ifo[n : 2 * n] * c + ifo[:n] * np.tanh(a[2 * n : 3 * n])
                    h = ifo[2 * n :] * np.tanh(c)
                out[t] = h
            hs.append(h)
            cs.append(c)
            seq = out
        y = seq @ self.w["head.weight"].T + self.w["head.bias"]  # (time, output)
        new = np.stack(hs)[:, None]  # (layers, 1, hidden)
        return y, ((new,) if cfg.cell != "lstm" else (new, np.stack(cs)[:, None]))


def weights_of(model: object) -> dict[str, np.ndarray]:
    """``model.state_dict()`` (a torch module) as float64 numpy arrays."""
    return {k: v.detach().cpu().double().numpy() for k, v in model.state_dict().items()}  # type: ignore[attr-defined]
