"""Step loop == whole-sequence forward, for every cell, state carried through time."""

from __future__ import annotations

import pytest
import torch
from conftest import CELLS, tiny_model


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kind", ["tokens", "frames"])
def test_step_loop_equals_sequence_forward(cell: str, kind: str) -> None:
    model = tiny_model(cell, kind)
    torch.manual_seed(1)
    steps, batch = 200, 3
    if kind == "tokens":
        x = torch.randint(0, model.config.input_size, (batch, steps))
    else:
        x = torch.randn(batch, steps, model.config.input_size)
    with torch.no_grad():
        whole, final = model(x)
        state = model.initial_state(batch)
        outs = []
        for t in range(steps):
            y, state = model.step(x[:, t], state)
            outs.append(y)
    stepped = torch.stack(outs, dim=1)
    diff = (stepped - whole).abs().max().item()
    print(f"{cell}/{kind}: max |step - forward| over {steps} steps = {diff:.3g}")
    assert diff <= 1e-5
    for a, b in zip(state, final):
        assert torch.allclose(a, b, atol=1e-5)
    assert whole.shape == (batch, steps, model.config.output_size)
