"""Post-training int8 quantisation (sln/quant.py) and the integer model it targets (sln/intspec.py)."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _int8_helper import ROOT, artifacts, sparse_artifacts  # noqa: E402

from sln import export, fmt, intspec, quant  # noqa: E402
from sln.checkpoint import load_checkpoint  # noqa: E402

# Stated bound on the real slice (1000 MNIST test images = 0.1 point per image): the int8
# model may lose at most 0.5 points against float (the full-test-set target is 0.3, see docs/MCU.md).
MAX_DROP_POINTS_SLICE = 0.5


def test_quantize_multiplier_roundtrip() -> None:
    rng = np.random.default_rng(0)
    for M in np.exp(rng.uniform(math.log(1e-9), math.log(1e5), 500)):
        m, sh = intspec.quantize_multiplier(float(M))
        assert 1 << 22 <= m < 1 << 23 and 1 <= sh <= 62
        assert abs(m * 2.0 ** -sh - M) <= M * 2.0 ** -22
    assert intspec.quantize_multiplier(0.0) == (0, 1)
    with pytest.raises(ValueError):
        intspec.quantize_multiplier(2.0 ** 30)   # would need a negative shift
    with pytest.raises(ValueError):
        intspec.quantize_multiplier(float("nan"))


def test_rounding_shift_is_floor_based() -> None:
    x = np.array([-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5], np.int64)
    # floor((x + 1) / 2): ties go up, as the C helper shr_round does
    assert intspec.rsr(x, 1).tolist() == [-2, -2, -1, -1, 0, 0, 1, 1, 2, 2, 3]


@pytest.mark.parametrize("F", [3, 12, 17, 20])
def test_gate_lut_matches_float_gate(F: int) -> None:
    """alpha(v) = exp(-(softplus(v) + lambda_min)) from the Q15 table within 4e-4 absolute."""
    lam_min = 0.01
    lut = intspec.alpha_lut(lam_min)
    v = np.random.default_rng(F).uniform(-20, 20, 4000)
    got = intspec.lut_gate(np.round(v * 2.0 ** F).astype(np.int64), lut, F) / 2.0 ** 15
    want = np.exp(-(np.logaddexp(0, np.round(v * 2.0 ** F) / 2.0 ** F) + lam_min))
    assert np.abs(got - want).max() < 4e-4


def test_topk_ties_go_to_lowest_index() -> None:
    score = np.array([[5, 7, 7, 1, 7, 0]])
    assert intspec.topk_stable(score, 3).tolist() == [[1, 2, 4]]
    assert intspec.topk_stable(score, 4).tolist() == [[1, 2, 4, 0]]


def test_int8_accuracy_within_bound_on_real_slice() -> None:
    a = artifacts()
    t = a.report["test"]
    assert t["n_images"] == 1000
    drop = 100 * (t["float_accuracy"] - t["int8_accuracy"])
    assert drop <= MAX_DROP_POINTS_SLICE, t
    assert t["float_accuracy"] > 0.7, "the test model did not learn; the bound would be meaningless"
    assert t["prediction_agreement"] >= 0.98, t
    assert t["winner_overlap"] >= 0.95, t
    assert t["logit_rms_error"] < 0.1 * t["logit_rms_float"], t


def test_quantiser_reports_error_statistics() -> None:
    rep = artifacts().report["quantiser"]
    layer = rep["layers"][0]
    for key in ("w_in_rel_rms_error", "w_rec_rel_rms_error"):
        assert 0 < layer[key] < 0.02, layer   # per-channel int8: ~0.6 % relative RMS error
    assert 0 < rep["w_out_rel_rms_error"] < 0.02
    assert 3 <= layer["a_frac"] <= 20 and 0 <= layer["h_frac"] <= 15
    assert rep["calibration_images"] == 1000


def test_boost_is_used_in_selection() -> None:
    """The frozen boost must select the winners as in float: dropping it must change winners."""
    a = artifacts()
    model, _ = load_checkpoint(a.checkpoint)
    qm = fmt.from_bytes(a.model_file.read_bytes())
    x = a.images[:300]
    _, fw = quant.float_forward(model, x)
    _, iw = intspec.reference_forward(qm, x)
    qm.layers[0].boost = np.full_like(qm.layers[0].boost, intspec.BOOST_MAX)
    _, nw = intspec.reference_forward(qm, x)
    same = (np.sort(fw, -1) == np.sort(iw, -1)).all(-1).mean()
    same_noboost = (np.sort(fw, -1) == np.sort(nw, -1)).all(-1).mean()
    assert same >= 0.9 and same_noboost < same - 0.2, (same, same_noboost)


def test_file_roundtrip_preserves_the_integer_model() -> None:
    a = artifacts()
    data = a.model_file.read_bytes()
    qm = fmt.from_bytes(data)
    assert fmt.to_bytes(qm) == data
    # size recomputed from the spec tables: header + table + each tensor (4-byte aligned)
    sizes = {"int8": 1, "int32": 4}
    specs = [(sp, qm.input_size) for kd, sp in fmt.LAYER_TENSORS.items() if kd not in fmt.SPARSE_ONLY_KINDS] + list(
        (sp, 0) for sp in fmt.READOUT_TENSORS.values())
    body = sum((fmt.expected_count(expr, d, qm.n_neurons, qm.n_classes) * sizes[dt] + 3) // 4 * 4
               for (_, dt, expr, _), d in specs)
    assert len(data) == fmt.HEADER_SIZE + fmt.TABLE_ENTRY_SIZE * len(specs) + body
    # column-sparse (version 2): each matrix's dense tensor replaced by ptr (D + 1 int32), delta and
    # val (one byte per stored entry each), exactly intspec.storage_bytes apart
    sp = sparse_artifacts()
    sdata = sp.model_file.read_bytes()
    assert fmt.to_bytes(fmt.from_bytes(sdata)) == sdata
    L = sp.qm.layers[0]
    saved = sum(intspec.storage_bytes(getattr(L, m), 1, "dense") - intspec.storage_bytes(getattr(L, m), 1, "sparse")
                for m in intspec.SPARSE_MATRICES)
    assert len(sdata) == len(fmt.to_bytes(sp.qm, layout="dense")) - saved
    for m, rows in (("w_in", qm.input_size), ("w_rec", qm.n_neurons)):
        e = int(intspec.column_entries(getattr(L, m)).sum())
        assert e >= int((getattr(L, m) != 0).sum())                 # nonzeros + padding entries
        assert intspec.storage_bytes(getattr(L, m), 1, "sparse") == 4 * (rows + 1) + 2 * ((e + 3) // 4 * 4) + 32


def test_export_cli_and_wrappers(tmp_path: Path) -> None:
    a = artifacts()
    out = tmp_path / "exp"
    rc = export.main(["--checkpoint", str(a.checkpoint), "--out", str(out), "--calib", "200",
                      "--eval-limit", "100"])
    assert rc == 0
    assert (out / "model.sln").read_bytes()[:4] == b"SLNQ"
    c_src = (out / "sln_model_data.c").read_text()
    assert f"sln_model_data[{(out / 'model.sln').stat().st_size}]" in c_src
    from sln.cli import EXIT_MODEL, run
    from sln.cli import main as sln_main
    # through the one error path: a missing checkpoint is exit 4 with one line (not a traceback, not 1)
    assert run(export.main, ["--checkpoint", str(tmp_path / "missing.safetensors"), "--out", str(out)]) == EXIT_MODEL
    assert sln_main(["export", "--checkpoint", str(a.checkpoint), "--out", str(tmp_path / "e2"),
                     "--calib", "100", "--eval-limit", "50"]) == 0
    r = subprocess.run([sys.executable, str(ROOT / "export.py"), "--help"], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0 and "--checkpoint" in r.stdout


def test_int8_refuses_a_model_with_input_coding() -> None:
    """The integer model and the C runtime read raw pixel rows: a pooled / thresholded model would be
    calibrated and run on the wrong input, so quantisation refuses it, naming the fields."""
    import numpy as np

    from sln.config import get_config
    from sln.model import SLN
    for over in ({"input_pool": 2, "input_size": 49}, {"input_threshold": 64}):
        m = SLN(get_config("sln-tiny", n_neurons=32, **over))
        with pytest.raises(ValueError, match="input coding"):
            quant.quantize(m, np.zeros((4, 28, 28), dtype=np.uint8))
