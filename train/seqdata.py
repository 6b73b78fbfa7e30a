"""Batches of whole sequences of different lengths, padded, with a mask and lengths.

``ShardedSequenceSource`` is the distributed sampler: update ``step`` of epoch ``e`` takes the
``step``-th slice of a permutation seeded by (seed, e); a run with several ranks splits
that same global batch by rows (``TrainBatch.part``), so the sequence of global batches never
depends on the number of ranks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from edgernn.train.trainer import TrainBatch


def pad_batch(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], max_len: int, pad_x: float | int = 0) -> TrainBatch:
    """Right-pad sequences (cut to ``max_len``) into one TrainBatch; mask marks the real steps."""
    lengths = [min(len(x), max_len) for x in xs]
    t = max(lengths)
    x0, y0 = np.asarray(xs[0]), np.asarray(ys[0])
    x = np.full((len(xs), t, *x0.shape[1:]), pad_x, dtype=x0.dtype)
    y = np.zeros((len(ys), t, *y0.shape[1:]), dtype=y0.dtype)
    mask = np.zeros((len(xs), t), dtype=np.float32)
    for i, (a, b, n) in enumerate(zip(xs, ys, lengths)):
        x[i, :n], y[i, :n], mask[i, :n] = a[:n], b[:n], 1.0
    return TrainBatch(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(mask), torch.tensor(lengths))


class ShardedSequenceSource:
    """Shuffled global batches of (x, y) sequences; see the module docstring."""

    carries_state = False

    def __init__(
        self,
        xs: Sequence[np.ndarray],
        ys: Sequence[np.ndarray],
        batch: int,
        max_len: int,
        seed: int,
        pad_x: float | int = 0,
        augment: Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        self.xs, self.ys = list(xs), list(ys)
        self.augment = augment  # (row, rng) -> (x, y): a label-preserving variant of row
        self.batch, self.max_len, self.seed, self.pad_x = batch, max_len, seed, pad_x
        self.per_epoch = max(1, len(self.xs) // batch)
        self._epoch, self._order = -1, np.zeros((0, batch), dtype=np.int64)

    def indices(self, step: int) -> np.ndarray:
        """Rows of global batch ``step``: a seeded permutation per epoch, cut into pools of 32
        batches, each pool sorted by length (less padding), then the batch order shuffled."""
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, epoch])
            perm = rng.permutation(len(self.xs))[: self.per_epoch * self.batch]
            pool = 32 * self.batch
            lengths = np.array([min(len(self.xs[j]), self.max_len) for j in perm])
            for a in range(0, len(perm), pool):
                order = np.argsort(lengths[a : a + pool], kind="stable")
                perm[a : a + pool] = perm[a : a + pool][order]
            batches = perm.reshape(self.per_epoch, self.batch)
            self._order = batches[rng.permutation(self.per_epoch)]
            self._epoch = epoch
        return self._order[i]

    def global_batch(self, step: int) -> TrainBatch:
        idx = self.indices(step)
        if self.augment is None:
            return pad_batch([self.xs[j] for j in idx], [self.ys[j] for j in idx], self.max_len, self.pad_x)
        rng = np.random.default_rng([self.seed, 7, step])
        pairs = [self.augment(int(j), rng) for j in idx]
        return pad_batch([a for a, _ in pairs], [b for _, b in pairs], self.max_len, self.pad_x)
