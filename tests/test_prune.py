"""Learned weight sparsity (sln/prune.py): the schedule's values, masks that hold, checkpoints and
resume with masks, the weight-read count, and the input coding's events on real MNIST images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from sln import SLNConfig, get_config
from sln.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from sln.data import load_split
from sln.model import SLN, code_images, encode_images
from sln.prune import Pruner, density_at, is_update_step, magnitude_mask, nonzero_weights, weight_reads
from sln.tasks.loop import RunOptions, TrainSpec, fit
from sln.train import train

# a small sparse image model: 10 % of W_in, 20 % of W_rec, pruned between 20 % and 70 % of the run
SPARSE = dict(n_neurons=64, active_frac=0.05, batch_size=32, lr=4e-3, density_in=0.1, density_rec=0.2,
              prune_start=0.2, prune_end=0.7, prune_every=5)


def _opts(out: Path, **kw) -> RunOptions:
    return RunOptions(out=out, **{"progress": False, "threads": 1, "limit_train": 640, "limit_test": 300, **kw})


def test_cubic_schedule_values_at_known_steps() -> None:
    # total 1000, start 10 %, end 60 %: dense before step 100, target from step 600 on
    d = [density_at(s, 1000, 0.1, 0.1, 0.6) for s in (0, 99, 100, 350, 475, 600, 601, 1000)]
    assert d[:3] == [1.0, 1.0, 1.0]
    assert d[3] == pytest.approx(0.1 + 0.9 * 0.5 ** 3)          # halfway: 0.2125
    assert d[4] == pytest.approx(0.1 + 0.9 * 0.25 ** 3)         # 3/4 of the way: 0.1140625
    assert d[5:] == [0.1, 0.1, 0.1]
    assert density_at(500, 1000, 1.0, 0.1, 0.6) == 1.0           # dense target: never prunes
    assert density_at(299, 1000, 0.05, 0.3, 0.3) == 1.0 and density_at(300, 1000, 0.05, 0.3, 0.3) == 0.05
    cfg = SLNConfig(density_in=0.1, prune_start=0.1, prune_end=0.6, prune_every=70)
    steps = [s for s in range(1001) if is_update_step(s, 1000, cfg)]
    assert steps == [100, 170, 240, 310, 380, 450, 520, 590, 600]    # every 70 from s0, and s1


def test_magnitude_mask_keeps_the_largest_inside_the_old_mask() -> None:
    w = torch.tensor([[0.5, -3.0, 0.1], [2.0, -0.2, 1.0]])
    keep = torch.ones_like(w, dtype=torch.bool)
    m = magnitude_mask(w, keep, 0.5)                           # 3 of 6: |-3|, 2, 1
    assert m.tolist() == [[False, True, False], [True, False, True]]
    keep2 = torch.tensor([[True, False, True], [True, True, True]])
    m2 = magnitude_mask(w, keep2, 0.5)                         # -3.0 is outside: 2, 1, 0.5
    assert m2.tolist() == [[True, False, False], [True, False, True]]
    tie = magnitude_mask(torch.ones(1, 4), torch.ones(1, 4, dtype=torch.bool), 0.5)
    assert tie.tolist() == [[True, True, False, False]]      # ties: lowest index first


def test_masked_weights_stay_exactly_zero_through_training(tmp_path: Path) -> None:
    cfg = get_config("sln-tiny", epochs=4, **{**SPARSE, "lr": 1e-2})
    m = train(cfg, _opts(tmp_path, limit_train=1280))
    model, _ = load_checkpoint(tmp_path / "checkpoint.safetensors")
    cell = model.cells[0]
    for w, mask, dens in ((cell.w_in.weight, cell.mask_in, 0.1), (cell.w_rec.weight, cell.mask_rec, 0.2)):
        assert int(mask.sum()) == int(dens * mask.numel() + 0.5)          # the target, exactly
        assert torch.equal(w != 0, mask)                                 # zero outside, nonzero inside
        # +0.0, not -0.0: the exporter and the engine see a plain zero
        assert not torch.signbit(w[~mask]).any()
    nz = nonzero_weights(model)
    assert nz["nonzero_in"] == int(0.1 * 128 * 196 + 0.5) and nz["nonzero_rec"] == int(0.2 * 128 * 64 + 0.5)
    # it still learns: measured 57.3 % on these 300 test images (chance 10 %; 2026-12-01)
    assert m["test_accuracy"] > 0.45


def test_every_optimizer_step_re_zeroes_the_pruned_weights() -> None:
    cfg = get_config("sln-tiny", **SPARSE)
    model = SLN(cfg)
    pruner = Pruner(cfg, total=20)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x, y = torch.rand(8, 4, 196), torch.arange(8) % 10
    for step in range(1, 21):
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()
        pruner(model, step)
        c = model.cells[0]
        assert torch.equal(c.w_in.weight != 0, c.mask_in) and torch.equal(c.w_rec.weight != 0, c.mask_rec)
        # the masks hold the density of the last update (steps 4, 9, 14 of this 20-step run)
        last = max([u for u in (4, 9, 14) if u <= step], default=0)
        d_in = pruner.densities(last)[0] if last else 1.0
        assert int(c.mask_in.sum()) == int(d_in * c.mask_in.numel() + 0.5), step
    assert [s for s in range(21) if is_update_step(s, 20, cfg)] == [4, 9, 14]
    assert pruner.densities(20) == (0.1, 0.2) and int(c.mask_rec.sum()) == int(0.2 * 128 * 64 + 0.5)


def test_checkpoint_round_trip_of_masks_and_old_checkpoints(tmp_path: Path) -> None:
    cfg = get_config("sln-tiny", **SPARSE)
    model = SLN(cfg)
    Pruner(cfg, total=10)(model, 7)                            # step 7 = prune_end: the target masks
    save_checkpoint(tmp_path / "s.safetensors", model)
    loaded, _ = load_checkpoint(tmp_path / "s.safetensors")
    for a, b in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert a[0] == b[0] and torch.equal(a[1], b[1]), a[0]
    assert loaded.cells[0].mask_in.dtype == torch.bool and int(loaded.cells[0].mask_in.sum()) == 2509
    x = torch.rand(3, 4, 196)
    assert torch.equal(loaded(x), model.eval()(x))
    # a dense model has no mask buffers, so a checkpoint from before masks existed still loads
    dense = SLN(get_config("sln-tiny"))
    save_checkpoint(tmp_path / "d.safetensors", dense)
    assert not any("mask" in k for k in load_file(str(tmp_path / "d.safetensors")))
    assert not load_checkpoint(tmp_path / "d.safetensors")[0].cells[0].masked
    # a sparse config whose masks are missing is refused, not silently dense
    t = load_file(str(tmp_path / "s.safetensors"))
    with safe_open(str(tmp_path / "s.safetensors"), "pt") as f:
        meta = f.metadata()
    save_file({k: v for k, v in t.items() if "mask" not in k}, str(tmp_path / "m.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="does not rebuild its model"):
        load_checkpoint(tmp_path / "m.safetensors")


def test_resume_with_pruning_is_bit_identical(tmp_path: Path) -> None:
    # 2 epochs of 20 steps, pruning over steps 8-28: the interruption after epoch 1 (step 20) falls
    # inside the schedule, with masks already shrunk
    cfg = get_config("sln-tiny", epochs=2, **SPARSE)
    full = train(cfg, _opts(tmp_path / "a"))
    train(cfg, _opts(tmp_path / "b", stop_after_epoch=1))
    half, _ = load_checkpoint(tmp_path / "b" / "checkpoint.safetensors")
    assert 0.1 < half.cells[0].mask_in.float().mean() < 1.0           # mid-schedule
    resumed = train(cfg, _opts(tmp_path / "b", resume=True))
    a, _ = load_checkpoint(tmp_path / "a" / "checkpoint.safetensors")
    b, _ = load_checkpoint(tmp_path / "b" / "checkpoint.safetensors")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb), ka
    assert resumed["test_accuracy"] == full["test_accuracy"]


def test_weight_reads_count_nonzeros_of_touched_columns() -> None:
    cfg = SLNConfig(input_size=4, n_classes=3, n_neurons=8, active_frac=0.25, boost_beta=0.0,
                    density_in=0.5, density_rec=0.5)
    model = SLN(cfg)
    c = model.cells[0]
    with torch.no_grad():
        c.mask_in.zero_()
        c.mask_in[:3, 0] = True                  # column 0 of W_in: 3 nonzeros, column 2: 5
        c.mask_in[:5, 2] = True
        c.mask_rec.zero_()
        c.mask_rec[:7] = True                    # every W_rec column: 7 nonzeros
        c.w_in.weight.uniform_(0.5, 1.0)
        c.w_rec.weight.uniform_(0.5, 1.0)
        c.apply_masks()
    x = torch.zeros(2, 3, 4)
    x[0, 0, 0] = 1.0                             # sample 0: events on columns 0, 2, 2 -> 3 + 5 + 5
    x[0, 1, 2] = 0.5
    x[0, 2, 2] = 0.5
    x[1, :, 0] = 1.0                             # sample 1: column 0 at each of 3 steps -> 3 x 3
    r = weight_reads(model, x)
    assert r["events"] == 3.0 and r["reads_in"] == (13 + 9) / 2
    # 2 winners (k = 2) per step with nonzero outputs, read at steps 2 and 3: 2 x 2 x 7
    assert r["reads_rec"] == 28.0 and r["reads"] == 28.0 + 11.0
    assert 2 * 3 <= r["reads_readout"] <= 6 * 3   # 2..6 distinct neurons fired, 3 classes each


def test_input_coding_event_counts_on_a_real_mnist_image() -> None:
    x, y = load_split("mnist", "test", limit=1)                # test image 0 is a 7
    assert y[0] == 7
    img = torch.from_numpy(x.copy())
    counts = {(p, t): int((code_images(img, p, t) != 0).sum()) for p in (1, 2) for t in (0, 64, 128)}
    # measured on the checksummed file (sln/data.py) on 2026-12-01
    assert counts == {(1, 0): 116, (1, 64): 89, (1, 128): 71, (2, 0): 39, (2, 64): 24, (2, 128): 18}
    # independent numpy check of the pooling: block means rounded half up
    ref = (x[0].astype(np.int32).reshape(14, 2, 14, 2).sum((1, 3)) + 2) // 4
    assert np.array_equal(code_images(img, 2, 0)[0].numpy(), ref.astype(np.uint8))
    cfg = get_config("sln-small-p2s10")
    seq = encode_images(img, cfg)
    assert seq.shape == (1, 4, 49) and int((seq != 0).sum()) == 39
    assert torch.equal(seq.flatten(), torch.from_numpy(ref.flatten()).float() / 255.0)
    with pytest.raises(ValueError, match="input_pool 3"):
        code_images(img, 3)


@pytest.mark.parametrize("field,value", [("density_in", 0.0), ("density_rec", 1.5), ("density_in", -0.1),
                                         ("prune_every", 0), ("input_pool", 0), ("input_pool", 5),
                                         ("input_threshold", 255), ("prune_end", 1.2)])
def test_config_refuses_bad_sparsity_fields(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        SLNConfig(**{field: value})


def test_config_refuses_a_schedule_that_ends_before_it_starts() -> None:
    with pytest.raises(ValueError, match="prune_start=0.7 must be <= prune_end=0.3"):
        SLNConfig(density_in=0.1, prune_start=0.7, prune_end=0.3)
    with pytest.raises(ValueError, match="input_threshold must be int"):
        SLNConfig(input_threshold=0.5)


def test_a_trainer_without_the_schedule_refuses_a_sparse_config() -> None:
    class NoHook:   # a task without after_step: the schedule would never run
        steps_per_epoch, eval_each_epoch = 1, False

    model = SLN(get_config("sln-tiny", density_rec=0.5))
    with pytest.raises(ValueError, match="pruning schedule"):
        fit(model, NoHook(), TrainSpec(lr=1e-3), RunOptions(out=None, progress=False, threads=1))
