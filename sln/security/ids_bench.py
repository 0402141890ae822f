"""The IDS benchmark: every detector on the same splits of one capture, one results table.

    python -m sln.security.ids_bench --capture tests/fixtures/ids --json /tmp/ids.json --markdown /tmp/ids.md
    python -m sln.security.ids_bench --quick        # tiny step counts: the smoke run the tests make

Rows (splits from sln.security.ids_data; thresholds calibrated at FPR 1e-3 on the benign validation
packets and reported as realised TPR/FPR on the test packets):
  * unsupervised, trained on the benign prefix, tested on everything after it: SLN reconstruction
    (sln-ids-small), the equal-parameter GRU reconstructing the same features, KitNET (1 pass as in the
    paper, and 10 passes), Isolation Forest on the packet features;
  * supervised, leave one attack type out, for each of the six types: SLN (sln-ids-sup), the
    equal-parameter GRU, gradient-boosted trees on the packet features; the unsupervised models are
    scored on the same held-out test sets, so every row of a held-out type compares.
Estimated energy per packet (sln/energy.py, the default profile, fp32) for the SLN, GRU and KitNET from
operation counts with one set of rules (`sln_ops_per_packet`, `gru_ops_per_packet`,
`KitNET.ops_per_packet`); the shared featurizer is not counted in any of them (the same for all).
Speed: featurizer packets/s and the end-to-end streaming detector (featurize + score, batch 1) with
its p50/p99 per-packet latency.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import SLNConfig, get_config
from ..device import add_device_argument
from ..energy import estimate_pj, get_profile
from ..model import SLN
from ..tasks.loop import RunOptions, TrainSpec
from . import ids_data as D
from .ids import CAL_FPR, PacketGRU, gru_hidden_for, train_on_split
from .ids_stream import NetDetector
from .kitnet import KitNET
from .metrics import calibrate_threshold
from .packets import iter_packets, read_events


# --------------------------------------------------------------------------- counts per packet
def sln_ops_per_packet(cfg: SLNConfig, input_events: float) -> tuple[dict[str, float], dict[str, float]]:
    """One packet = one step of the event-driven SLN + the per-step readout over the k winners + the score.
    input_events: mean nonzero scaled features per packet (each reads one 2N-wide W_in row).
    -> (ops, fp32 footprints {matrix, param, act})."""
    N, k, C, D_ = cfg.n_neurons, cfg.k, cfg.n_classes, cfg.input_size
    ops = {"macs": 2 * N * input_events + 2 * N * k,             # W_in rows of nonzero inputs, W_rec of winners
           "adds": 3 * N + N + 2 * N + C,                         # LayerNorm, lambda_min, update, readout bias
           "muls": 3 * N + N + 2 * N + N,                         # LayerNorm, lam*dt, update, boost
           "nonlin": 1 + 2 * N + N,                               # rsqrt, softplus (exp + log1p), exp(-lam dt)
           "cmps": N + N * max(1, math.ceil(math.log2(max(k, 2)))),   # ReLU, k-WTA
           "weight_bytes": 4 * (2 * N * input_events + 2 * N * k + k * C),
           "param_bytes": 4 * (2 * N + 2 * N + N + C),            # bias, LayerNorm gain/shift, boost, readout bias
           "act_bytes": 4 * (2 * N * 2 + N * 2 + k + D_)}
    ops["macs"] += k * C                                          # readout: the k winners' columns
    if C == D_:                                                   # reconstruction RMSE: diff, square-sum, mean, sqrt
        ops["adds"] += C
        ops["macs"] += C
        ops["muls"] += 1
        ops["nonlin"] += 1
    else:
        ops["adds"] += 1                                          # logit[1] - logit[0]
    fp = {"matrix": 4.0 * (2 * N * D_ + 2 * N * N + N * C), "param": 4.0 * (2 * N + 2 * N + N + C),
          "act": 4.0 * (4 * N + D_)}
    return ops, fp


def gru_ops_per_packet(g: PacketGRU, input_events: float) -> tuple[dict[str, float], dict[str, float]]:
    """One GRU step (input MACs only for nonzero inputs: zero-skipping granted, as to the ViT) + readout."""
    H, D_, C = g.cfg.hidden, g.cfg.input_size, g.cfg.n_classes
    ops = {"macs": 3 * H * input_events + 3 * H * H + H * C,
           "adds": 6 * H + 3 * H + C + 2 * H,                     # 6 biases, gate sums, readout bias, update
           "muls": 3 * H,                                         # r * (W h), (1 - z) * n, z * h
           "nonlin": 2 * 2 * H + H,                               # 2 sigmoids (exp + reciprocal), tanh
           "weight_bytes": 4 * (3 * H * input_events + 3 * H * H + H * C),
           "param_bytes": 4 * (6 * H + C),
           "act_bytes": 4 * (D_ + 6 * H + 3 * H + H + C)}
    if C == D_:
        ops["adds"] += C
        ops["macs"] += C
        ops["muls"] += 1
        ops["nonlin"] += 1
    fp = {"matrix": 4.0 * (3 * H * (D_ + H) + H * C), "param": 4.0 * (6 * H + C), "act": 4.0 * (D_ + 8 * H)}
    return ops, fp


def energy_nj(ops: dict[str, float], fp: dict[str, float]) -> dict[str, float]:
    e = estimate_pj(ops, fp["matrix"], fp["act"], get_profile(), "fp32", fp["param"])
    return {"total_nj": e["total"] / 1e3, "compute_nj": e["compute"] / 1e3, "memory_nj": e["memory"] / 1e3,
            "weight_level": e["weight_level"]}


# --------------------------------------------------------------------------- the runs
def _row(name: str, cap: D.Capture, split: D.Split, s: np.ndarray, thr: float, **extra: Any) -> dict[str, Any]:
    return {"model": name, **D.ids_report(cap, split, s, thr), **extra}


def _sklearn():  # noqa: ANN202
    try:
        import sklearn.ensemble as ens
    except ImportError as e:
        raise ImportError("the Isolation Forest / GBT rows need scikit-learn: pip install scikit-learn") from e
    return ens


def run(capture: str | Path, quick: bool = False, seed: int = 0, steps: int | None = None,
        threads: int = 1, device: str = "cpu") -> dict[str, Any]:
    """device: where the SLN and GRU detectors train (default the CPU, where the baselines run and their
    fit seconds are compared); scoring streams one packet at a time on the CPU either way."""
    torch.set_num_threads(threads)
    cap = D.load_capture(capture)
    unsup = D.unsupervised_split(cap)
    types = cap.types()
    n_steps = steps or (20 if quick else 300)
    opts = RunOptions(out=None, progress=False, threads=threads, device=device)
    ens = _sklearn()
    res: dict[str, Any] = {"capture": str(capture), "packets": len(cap.y), "sha256": cap.sha256, "seed": seed,
                           "steps": n_steps, "quick": quick, "calibration_fpr": CAL_FPR,
                           "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                           "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}",
                           "unsupervised": [], "loao": {t: [] for t in types}, "energy": {}, "speed": {}}
    val_b = unsup.val & (cap.y == 0)
    loao = {t: D.loao_split(cap, t) for t in types}

    def both(name: str, s: np.ndarray, thr: float, **extra: Any) -> None:
        res["unsupervised"].append(_row(name, cap, unsup, s, thr, **extra))
        for t in types:
            res["loao"][t].append(_row(name + " (unsup.)", cap, loao[t], s, thr))

    # --- unsupervised
    cfg_u = get_config("sln-ids-small")
    spec = TrainSpec(lr=cfg_u.lr, max_steps=n_steps, warmup_steps=max(1, n_steps // 10))
    torch.manual_seed(seed)
    sln_u = SLN(cfg_u)
    tr = train_on_split(sln_u, cap, unsup, "reconstruct", spec, opts, cfg_u.batch_size, seed)
    both(f"SLN {cfg_u.name}", tr.scores, tr.spec.threshold, params=sln_u.num_params(), fit_s=round(tr.fit_s, 1))
    H = gru_hidden_for(sln_u.num_params(), cfg_u.input_size, cfg_u.n_classes)
    torch.manual_seed(seed)
    gru_u = PacketGRU(cfg_u.input_size, H, cfg_u.n_classes)
    tg = train_on_split(gru_u, cap, unsup, "reconstruct", spec, opts, cfg_u.batch_size, seed)
    both(f"GRU H={H}", tg.scores, tg.spec.threshold, params=gru_u.num_params(), fit_s=round(tg.fit_s, 1))
    kits = []
    for ep in (1, 10):
        t0 = time.perf_counter()
        kn = KitNET(epochs=1 if quick else ep, seed=seed).fit(cap.ev.x[unsup.train])
        fit_s = time.perf_counter() - t0
        s = kn.score(cap.ev.x)
        both(kn.name, s, calibrate_threshold(s[val_b], CAL_FPR), params=kn.num_params(), fit_s=round(fit_s, 1),
             clusters=[len(c) for c in kn.clusters])
        kits.append(kn)
        if quick:
            break
    iso = ens.IsolationForest(n_estimators=200, random_state=seed).fit(cap.ev.x[unsup.train])
    s = -iso.score_samples(cap.ev.x)
    both("Isolation Forest", s, calibrate_threshold(s[val_b], CAL_FPR))

    # --- supervised, leave one type out
    cfg_s = get_config("sln-ids-sup")
    spec_s = TrainSpec(lr=cfg_s.lr, max_steps=n_steps, warmup_steps=max(1, n_steps // 10))
    Hs = gru_hidden_for(SLN(cfg_s).num_params(), cfg_s.input_size, 2)
    for t in types if not quick else types[:2]:
        sp = loao[t]
        torch.manual_seed(seed)
        m = SLN(cfg_s)
        r = train_on_split(m, cap, sp, "classify", spec_s, opts, cfg_s.batch_size, seed)
        res["loao"][t].insert(0, _row(f"SLN {cfg_s.name}", cap, sp, r.scores, r.spec.threshold,
                                      params=m.num_params(), fit_s=round(r.fit_s, 1)))
        torch.manual_seed(seed)
        g = PacketGRU(cfg_s.input_size, Hs, 2)
        r = train_on_split(g, cap, sp, "classify", spec_s, opts, cfg_s.batch_size, seed)
        res["loao"][t].insert(1, _row(f"GRU H={Hs}", cap, sp, r.scores, r.spec.threshold, params=g.num_params(),
                                      fit_s=round(r.fit_s, 1)))
        gbt = ens.HistGradientBoostingClassifier(max_iter=100, random_state=seed).fit(cap.ev.x[sp.train],
                                                                                       cap.y[sp.train])
        p = gbt.predict_proba(cap.ev.x)[:, 1]
        res["loao"][t].insert(2, _row("GBT", cap, sp, p, calibrate_threshold(p[val_b], CAL_FPR)))

    # --- energy per packet (same rules) and speed
    scale = np.asarray(tr.spec.scale, np.float32)
    events = float((D.apply_scale(cap.ev.x[unsup.test], scale) != 0).sum(1).mean())
    for name, (ops, fp) in {f"SLN {cfg_u.name}": sln_ops_per_packet(cfg_u, events),
                            f"SLN {cfg_s.name}": sln_ops_per_packet(cfg_s, events),
                            f"GRU H={H}": gru_ops_per_packet(gru_u, events),
                            kits[0].name: (kits[0].ops_per_packet(), kits[0].footprints())}.items():
        res["energy"][name] = {"ops": ops, **energy_nj(ops, fp)}
    res["energy"]["input_events_per_packet"] = events
    res["speed"] = speed(capture, sln_u, tr.spec, kits[0], limit=5000 if quick else None)
    return res


def speed(capture: str | Path, model: SLN, spec: Any, kit: KitNET, limit: int | None = None) -> dict[str, Any]:
    """Featurizer alone, and the streaming SLN detector end to end (featurize + score, batch 1), from the
    pcap bytes in memory; KitNET's batch-1 scoring rate for comparison."""
    man = json.loads((Path(capture) / "manifest.json").read_text())
    data = (Path(capture) / man["pcap"]).read_bytes()
    t0 = time.perf_counter()
    n = len(read_events(io.BytesIO(data), limit=limit))
    feat = n / (time.perf_counter() - t0)
    out: dict[str, Any] = {"featurizer_pkts_per_s": feat}
    for backend in ("c", "torch"):
        try:
            det = NetDetector(model, spec, backend=backend)
        except Exception as e:   # no compiler: report, the torch row still runs
            out[f"detector_{backend}"] = {"error": str(e).splitlines()[0]}
            continue
        pk = iter_packets(io.BytesIO(data))
        cut = limit if backend == "c" else min(limit or 5000, 5000)   # torch at batch 1 is slow: 5000 packets
        t0 = time.perf_counter()
        n = sum(1 for _, _ in zip(range(cut or 1 << 62), det.run(pk)))
        el = time.perf_counter() - t0
        out[f"detector_{backend}"] = {"packets": n, "pkts_per_s": n / el, "p50_us": det.latency.quantile(0.5) * 1e6,
                                      "p99_us": det.latency.quantile(0.99) * 1e6}
    x = read_events(io.BytesIO(data), limit=2000).x
    t0 = time.perf_counter()
    for i in range(len(x)):
        kit.score(x[i:i + 1])
    out["kitnet_batch1_pkts_per_s"] = len(x) / (time.perf_counter() - t0)
    return out


# --------------------------------------------------------------------------- tables
def _fmt(v: Any, nd: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def markdown(res: dict[str, Any]) -> str:
    L = [f"Capture `{res['capture']}` ({res['packets']:,} packets), {res['steps']} training steps per neural model, "
         f"seed {res['seed']}, {res['date']}, {res['machine']}.", "",
         "**Unsupervised** (benign prefix only; test = all packets after it):", "",
         "| model | params | pkt ROC-AUC | pkt TPR@1e-3 | pkt EER | TPR / FPR at stored thr | flow ROC-AUC | "
         "flow TPR@1e-3 | flow EER | delay (s) per type |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["unsupervised"]:
        p, f = r["per_packet"], r["per_flow"]
        delays = ", ".join(f"{k} {_fmt(v['delay']['seconds'], 3)}" for k, v in r["per_type"].items())
        L.append(f"| {r['model']} | {r.get('params', '-')} | {_fmt(p['roc_auc'])} | {_fmt(p['tpr@1e-3'], 3)} | "
                 f"{_fmt(p['eer'])} | {_fmt(p['tpr@thr'], 3)} / {_fmt(p['fpr@thr'])} | {_fmt(f['roc_auc'])} | "
                 f"{_fmt(f['tpr@1e-3'], 3)} | {_fmt(f['eer'])} | {delays} |")
    L += ["", "**Held-out attack types** (supervised rows trained on benign + the other five types; "
          "unsupervised rows are the models above, scored on the same test set):", "",
          "| held out | model | pkt ROC-AUC | pkt TPR@1e-3 | pkt EER | TPR / FPR at stored thr | flow ROC-AUC | "
          "flow TPR@1e-3 | delay (s) |", "|---|---|---|---|---|---|---|---|---|"]
    for t, rows in res["loao"].items():
        for r in rows:
            p, f = r["per_packet"], r["per_flow"]
            d = r["per_type"][t]["delay"]["seconds"]
            L.append(f"| {t} | {r['model']} | {_fmt(p['roc_auc'])} | {_fmt(p['tpr@1e-3'], 3)} | {_fmt(p['eer'])} | "
                     f"{_fmt(p['tpr@thr'], 3)} / {_fmt(p['fpr@thr'])} | {_fmt(f['roc_auc'])} | "
                     f"{_fmt(f['tpr@1e-3'], 3)} | {_fmt(d, 3)} |")
    L += ["", f"**Estimated energy per packet** (fp32, `horowitz45`; model only, featurizer excluded; "
          f"{res['energy']['input_events_per_packet']:.1f} nonzero input features per packet):", "",
          "| model | MACs | nonlinear | weight bytes read | nJ / packet (compute + memory) |", "|---|---|---|---|---|"]
    for name, e in res["energy"].items():
        if isinstance(e, dict):
            o = e["ops"]
            L.append(f"| {name} | {o['macs']:,.0f} | {o['nonlin']:,.0f} | {o['weight_bytes']:,.0f} | "
                     f"{e['total_nj']:.2f} ({e['compute_nj']:.2f} + {e['memory_nj']:.2f}) |")
    s = res["speed"]
    parts = [f"featurizer {s['featurizer_pkts_per_s']:,.0f} packets/s"]
    for k, v in s.items():
        if k.startswith("detector_"):
            parts.append(f"detector ({k[9:]}) " + (
                f"unavailable: {v['error']}" if "error" in v else
                f"{v['pkts_per_s']:,.0f} packets/s end to end, p50 {v['p50_us']:.0f} us, p99 {v['p99_us']:.0f} us"))
    parts.append(f"KitNET scoring alone {s['kitnet_batch1_pkts_per_s']:,.0f} packets/s")
    L += ["", "**Speed** (batch 1, one thread): " + "; ".join(parts) + "."]
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sln.security.ids_bench", description=__doc__.split("\n")[0])
    p.add_argument("--capture", type=Path, default=Path("tests/fixtures/ids"))
    p.add_argument("--quick", action="store_true", help="20 training steps, 1 KitNET pass, 2 held-out types")
    p.add_argument("--steps", type=int, default=None, help="training steps per neural model (default 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    add_device_argument(p)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--markdown", type=Path, default=None)
    a = p.parse_args(argv)
    res = run(a.capture, a.quick, a.seed, a.steps, a.threads, a.device)
    md = markdown(res)
    print(md)
    if a.json:
        a.json.write_text(json.dumps(res, indent=1, default=float) + "\n")
    if a.markdown:
        a.markdown.write_text(md + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
