"""scripts/ids_full_eval.py (the full-capture evaluation of issue 11) on the shipped small capture: detect-net
style records are checked against the capture and scored like ids_report; KitNET reproduces its ids_bench row."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CAP = ROOT / "tests" / "fixtures" / "ids"


def _script():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("ids_full_eval", ROOT / "scripts" / "ids_full_eval.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)   # type: ignore[union-attr]
    return mod


def _write(path: Path, ts: np.ndarray, s: np.ndarray, thr: float) -> None:
    path.write_text("".join(json.dumps({"ts": float(t), "score": float(v), "alert": bool(v > thr),
                                        "threshold": thr}) + "\n" for t, v in zip(ts, s)))


def test_records_and_kitnet(tmp_path: Path) -> None:
    ev = _script()
    cap = ev.load_fast(CAP)
    assert len(cap.y) == 39700 and int(cap.y.sum()) == 39700 - 14422
    sp = ev.D.unsupervised_split(cap)
    # a perfect score (the label) and a useless one (constant): ROC-AUC 1 and 0.5, FPR 0 at threshold 0.5
    good, flat = tmp_path / "good.jsonl", tmp_path / "flat.jsonl"
    _write(good, cap.ev.ts, cap.y.astype(float), 0.5)
    _write(flat, cap.ev.ts, np.zeros(len(cap.y)), 0.5)
    out = tmp_path / "eval.json"
    assert ev.main(["--capture", str(CAP), "--records", str(good), "--records", str(flat), "--kitnet",
                    "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["packets"] == 39700 and res["test_benign"] == int((sp.test & (cap.y == 0)).sum()) == 9891
    g, f = res["models"][str(good)], res["models"][str(flat)]
    assert g["per_packet"]["roc_auc"] == 1.0 and g["per_packet"]["fpr@thr"] == 0.0 and g["per_packet"]["eer"] == 0.0
    assert f["per_packet"]["roc_auc"] == 0.5 and f["per_packet"]["tpr@thr"] == 0.0
    w = g["benign_fpr"]
    assert w["in_windows"]["benign"] + w["in_gaps"]["benign"] == 9891 and w["in_gaps"]["fpr@thr"] == 0.0
    k = res["models"]["KitNET (m=10, 1 pass)"]        # docs/SECURITY_IDS.md part 2: 0.9984, EER 0.0136
    assert abs(k["per_packet"]["roc_auc"] - 0.9984) < 5e-4 and abs(k["per_packet"]["eer"] - 0.0136) < 2e-3
    # records that do not line up with the capture are refused
    short = tmp_path / "short.jsonl"
    _write(short, cap.ev.ts[:-1], np.zeros(len(cap.y) - 1), 0.5)
    with pytest.raises(SystemExit, match="records for"):
        ev.main(["--capture", str(CAP), "--records", str(short)])
    shifted = tmp_path / "shifted.jsonl"
    _write(shifted, cap.ev.ts + 1.0, np.zeros(len(cap.y)), 0.5)
    with pytest.raises(SystemExit, match="line up"):
        ev.main(["--capture", str(CAP), "--records", str(shifted)])
