"""scripts/gpu_check.py (the prepared GPU check of issue 13) on a machine without CUDA: it measures nothing,
says so in one line, exits 3 and writes {"ok": false, "error": ...}; no GPU figure can come out of it here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_fails_clearly_without_cuda(tmp_path: Path) -> None:
    assert not torch.cuda.is_available()          # this project's CI and machines have no GPU
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert p.returncode == 3, p.stderr[-2000:]
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gpu_check: no CUDA device") and "nothing was measured" in err[0]
    rep = json.loads((tmp_path / "gpu_check.json").read_text())
    assert rep["ok"] is False and "no CUDA device" in rep["error"]
    assert "cases" not in rep and "speedups" not in rep           # no figure at all, not even a CPU one
    assert rep["environment"]["torch"] == torch.__version__
