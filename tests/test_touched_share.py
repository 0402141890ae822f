"""scripts/touched_share.py (issue 9: how much per-neuron work could follow activity) on a hand-built model
whose touched neurons are known."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from sln.config import get_config
from sln.model import SLN

ROOT = Path(__file__).resolve().parents[1]


def _script():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("touched_share", ROOT / "scripts" / "touched_share.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)   # type: ignore[union-attr]
    return mod


def test_touched_neurons_follow_the_stored_weights_of_events_and_winners() -> None:
    """N = 8, 2 steps of 392 pixels. W_in has entries only in pixel 0's column (u row 0, v row 8 + 1), W_rec
    only in column 3 (u rows 5 and 6), and neuron 3's bias makes it a winner of step 0 in every image. Image A
    lights pixel 0, image B nothing: step 0 touches neurons {0, 1} in A, none in B; step 1 touches the two
    neurons that winner 3 reaches through W_rec, in both."""
    torch.manual_seed(0)
    model = SLN(get_config("sln-small", input_size=392, n_neurons=8, active_frac=0.25, boost_beta=0.0)).eval()
    cell = model.cells[0]
    with torch.no_grad():
        cell.w_in.weight.zero_()
        cell.w_in.weight[0, 0], cell.w_in.weight[8 + 1, 0] = 1.0, 1.0
        cell.w_in.bias[:8] = 0.0
        cell.w_in.bias[3] = 10.0                                    # neuron 3's candidate is the largest
        cell.w_rec.weight.zero_()
        cell.w_rec.weight[5, 3], cell.w_rec.weight[6, 3] = 1.0, 1.0
    images = torch.zeros(2, 28, 28, dtype=torch.uint8)
    images[0, 0, 0] = 255
    r = _script().touched_share(model, images)
    assert r["steps"] == 2 and r["events"] == [0.5, 0.0] and r["previous_winners"][0] == 0.0
    assert r["previous_winners"][1] >= 1.0                           # neuron 3 (and in A maybe neuron 0) fired
    assert r["neurons_touched"] == pytest.approx([2 / 16, 2 / 8])     # step 0: 2 of 8 in A, 0 in B
    assert r["quiet_neuron_share_mean"] == pytest.approx(1 - (2 / 16 + 2 / 8) / 2)
