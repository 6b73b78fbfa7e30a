"""The models and BPTT: textbook Elman == nn.RNN, fused == unrolled gradients, truncation,
padding that never reaches the loss."""

from __future__ import annotations

import pytest
import torch
from conftest import CELLS

from edgernn.runtime.spec import ModelConfig
from edgernn.train.langid import label_loss_sum
from edgernn.train.model import build_model, elman_reference
from edgernn.train.trainer import TrainBatch


def model_of(cell: str, layers: int = 2, hidden: int = 12, vocab: int = 9, out: int = 5, seed: int = 0):
    torch.manual_seed(seed)
    cfg = ModelConfig(cell, "tokens", vocab, hidden, layers, out, embed_size=6)
    return build_model(cfg)


def grads(model) -> dict[str, torch.Tensor]:
    return {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None}


def test_elman_textbook_recurrence_equals_torch_rnn_outputs_and_gradients() -> None:
    model = model_of("rnn", layers=2)
    x = torch.randint(0, 9, (3, 40))
    y_fused, _ = model(x)
    y_loop = elman_reference(model, x)
    assert (y_fused - y_loop).abs().max().item() <= 1e-5
    y_fused.sum().backward()
    g_fused = grads(model)
    model.zero_grad()
    elman_reference(model, x).sum().backward()
    for name, g in grads(model).items():
        assert torch.allclose(g, g_fused[name], atol=1e-5), name


@pytest.mark.parametrize("cell", CELLS)
def test_fused_bptt_gradient_equals_the_fully_unrolled_step_loop(cell: str) -> None:
    model = model_of(cell)
    x = torch.randint(0, 9, (2, 25))
    target = torch.randint(0, 5, (2, 25))
    ce = torch.nn.functional.cross_entropy
    y, _ = model(x)
    ce(y.reshape(-1, 5), target.reshape(-1), reduction="sum").backward()  # loss summed over time
    fused = grads(model)
    model.zero_grad()
    state, loss = model.initial_state(2), torch.zeros(())
    for t in range(25):  # one autograd node per step: the unrolled graph
        y_t, state = model.step(x[:, t], state)
        loss = loss + ce(y_t, target[:, t], reduction="sum")
    loss.backward()
    for name, g in grads(model).items():
        assert torch.allclose(g, fused[name], atol=1e-5, rtol=1e-4), name


def test_truncation_carries_state_forward_but_stops_gradients_at_the_window_edge() -> None:
    model = model_of("gru", layers=1)
    x = torch.randint(0, 9, (2, 30))
    y_full, _ = model(x)
    y1, s = model(x[:, :15])
    y2_carried, _ = model(x[:, 15:], s)
    y2_detached, _ = model(x[:, 15:], tuple(t.detach() for t in s))
    # Forward: carrying the state gives the whole-sequence outputs, detached or not.
    assert (torch.cat([y1, y2_detached], 1) - y_full).abs().max().item() <= 1e-5
    # Backward: the untruncated split equals full BPTT; the detached window sends nothing back.
    emb = model.encoder.weight
    g_full = torch.autograd.grad(y_full[:, 15:].sum(), emb, retain_graph=True)[0]
    g_carried = torch.autograd.grad(y2_carried.sum(), emb, retain_graph=True)[0]
    assert torch.allclose(g_full, g_carried, atol=1e-5)
    first_window_ids = set(x[:, :15].flatten().tolist()) - set(x[:, 15:].flatten().tolist())
    g_detached = torch.autograd.grad(y2_detached.sum(), emb)[0]
    for i in first_window_ids:  # rows only the first window uses: zero gradient once truncated
        assert g_detached[i].abs().max().item() == 0.0
        assert g_carried[i].abs().max().item() > 0.0


@pytest.mark.parametrize("cell", CELLS)
def test_padded_batch_gives_each_sequences_own_loss_and_gradient(cell: str) -> None:
    model = model_of(cell)
    lengths = [7, 3, 11]
    torch.manual_seed(3)
    seqs = [torch.randint(0, 9, (n,)) for n in lengths]
    labels = [torch.randint(0, 5, (n,)) for n in lengths]
    t = max(lengths)
    x = torch.full((3, t), 8)  # padding id: anything, it must not matter
    y = torch.zeros(3, t, dtype=torch.long)
    mask = torch.zeros(3, t)
    for i, (s, lab) in enumerate(zip(seqs, labels)):
        x[i, : len(s)], y[i, : len(s)], mask[i, : len(s)] = s, lab, 1
    out, _ = model(x)
    rows = [TrainBatch(x[i : i + 1], y[i : i + 1], mask[i : i + 1]) for i in range(3)]
    per_seq = [label_loss_sum(out[i : i + 1], rows[i]) for i in range(3)]
    label_loss_sum(out, TrainBatch(x, y, mask)).backward()
    batched = grads(model)
    alone_total: dict[str, torch.Tensor] = {}
    for i, (s, lab) in enumerate(zip(seqs, labels)):
        model.zero_grad()
        o, _ = model(s[None])
        loss = label_loss_sum(o, TrainBatch(s[None], lab[None], torch.ones(1, len(s))))
        assert abs(loss.item() - per_seq[i].item()) <= 1e-5 * max(1.0, loss.item())
        loss.backward()
        for k, g in grads(model).items():
            alone_total[k] = alone_total.get(k, 0) + g
    for k, g in batched.items():
        assert torch.allclose(g, alone_total[k], atol=1e-5, rtol=1e-4), k
    # With lengths (packed), the final state is each sequence's state after its last real step.
    _, packed_state = model(x, None, torch.tensor(lengths))
    for i, s in enumerate(seqs):
        _, alone_state = model(s[None])
        for a, b in zip(packed_state, alone_state):
            assert torch.allclose(a[:, i], b[:, 0], atol=1e-5)


def test_lstm_forget_gate_starts_open() -> None:
    model = model_of("lstm", layers=2, hidden=12)
    for layer in range(2):
        b = getattr(model.rnn, f"bias_ih_l{layer}")
        assert torch.all(b[12:24] == 1.0)


def test_dropout_acts_in_training_only_and_never_on_the_recurrence() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig("gru", "tokens", 9, 12, 2, 5, dropout=0.5, embed_size=6))
    x = torch.randint(0, 9, (2, 20))
    model.eval()
    a, _ = model(x)
    b, _ = model(x)
    assert torch.equal(a, b)
    model.train()
    c, _ = model(x)
    assert (c - a).abs().max().item() > 1e-3
    assert [type(m).__name__ for m in model.modules()].count("Dropout") == 1  # one module, no recurrent mask
    assert model.rnn.dropout == 0.5  # between the stacked layers
