"""The IDS benchmark: every detector on the same splits of one capture, one results table.

    python -m sln.security.ids_bench --capture tests/fixtures/ids --json /tmp/ids.json --markdown /tmp/ids.md
    python -m sln.security.ids_bench --quick        # tiny step counts: the smoke run the tests make
    python -m sln.security.ids_bench --capture DIR --models kitnet10,gru,iforest --time-budget-s 1800 --plan
        # bounded: choose the models (--models, --types), cap training packets (--max-train-packets) or the
        # capture (--max-packets), a time budget; the plan with its estimate is printed first, then progress
        # (sln.security.ids_bench_plan; --plan prints the plan and stops)

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
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import SLNConfig, get_config
from ..device import add_device_argument
from ..model import SLN
from ..tasks.loop import RunOptions, TrainSpec
from . import ids_bench_plan as P
from . import ids_data as D
from .ids import CAL_FPR, PacketGRU, gru_hidden_for
from .ids_energy import energy_nj
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
        threads: int = 1, device: str = "cpu", models: str | list[str] | None = None,
        types: str | None = None, max_packets: int | None = None, max_train_packets: int | None = None,
        time_budget_s: float | None = None, block: bool = True, log: Any = None,
        plan_only: bool = False) -> dict[str, Any]:
    """device: where the SLN and GRU detectors train (default the CPU, where the baselines run and their
    fit seconds are compared); scoring streams one packet at a time on the CPU either way.
    models / types / max_packets / max_train_packets / time_budget_s: what runs and the bounds on it
    (sln.security.ids_bench_plan; default every model, every type, every packet, no budget). The plan is
    printed first to `log` (default stderr), then a line per item. block: score the SLN through the C
    block path when it builds (else, and with block=False, the per-packet step)."""
    torch.set_num_threads(threads)
    names = P.parse_models(models) if not isinstance(models, list) else P.parse_models(",".join(models))
    if max_train_packets is not None and max_train_packets < 1:
        raise ValueError("--max-train-packets must be >= 1")
    t_load = time.perf_counter()
    cap, reader = P.load_capture(capture)
    cap = P.head(cap, max_packets)
    t_load = time.perf_counter() - t_load
    unsup = D.unsupervised_split(cap)
    all_types = cap.types()
    types_l = P.parse_types(types, all_types) if not quick else all_types[:2]
    n_steps = steps or (20 if quick else 300)
    opts = RunOptions(out=None, progress=False, threads=threads, device=device)
    block = block and P.block_path_available()
    res: dict[str, Any] = {"capture": str(capture), "packets": len(cap.y), "sha256": cap.sha256, "seed": seed,
                           "steps": n_steps, "quick": quick, "calibration_fpr": CAL_FPR, "models": names,
                           "held_out_types": types_l, "max_packets": max_packets,
                           "max_train_packets": max_train_packets, "time_budget_s": time_budget_s,
                           "reader": reader, "sln_scoring": "c-block" if block else "per-packet",
                           "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                           "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}",
                           "unsupervised": [], "loao": {t: [] for t in all_types}, "energy": {}, "speed": {}}
    val_b = unsup.val & (cap.y == 0)
    loao = {t: D.loao_split(cap, t) for t in all_types}
    unsup_l = P.limit_split(unsup, max_train_packets)
    loao_l = {t: P.limit_split(loao[t], max_train_packets) for t in all_types}
    items = P.plan(names, cap, unsup_l, loao_l, types_l, n_steps, quick)
    prog = P.Progress(items, time_budget_s, log)
    prog.show_plan(f"capture {capture}: {len(cap.y):,} packets read in {P.fmt_s(t_load)} ({reader} featurizer); "
                   f"{int(unsup_l.train.sum()):,} unsupervised training packets"
                   + (f" (capped at {max_train_packets:,})" if max_train_packets else "")
                   + f"; {n_steps} steps per neural model; SLN scoring: {res['sln_scoring']}")
    if plan_only:
        return res
    order = {n: i for i, n in enumerate(P.KNOWN)}

    def both(key: str, name: str, s: np.ndarray, thr: float, **extra: Any) -> None:
        res["unsupervised"].append(_row(name, cap, unsup, s, thr, key=key, **extra))
        for t in all_types:
            res["loao"][t].append(_row(name + " (unsup.)", cap, loao[t], s, thr, key=key))

    cfg_u, cfg_s = get_config("sln-ids-small"), get_config("sln-ids-sup")
    spec = TrainSpec(lr=cfg_u.lr, max_steps=n_steps, warmup_steps=max(1, n_steps // 10))
    spec_s = TrainSpec(lr=cfg_s.lr, max_steps=n_steps, warmup_steps=max(1, n_steps // 10))
    H = gru_hidden_for(SLN(cfg_u).num_params(), cfg_u.input_size, cfg_u.n_classes)
    Hs = gru_hidden_for(SLN(cfg_s).num_params(), cfg_s.input_size, 2)
    got: dict[str, Any] = {}
    ens = _sklearn() if {"iforest", "gbt"} & set(names) else None

    def do_sln() -> None:
        torch.manual_seed(seed)
        m = SLN(cfg_u)
        tr = P.train_split(m, cap, unsup_l, "reconstruct", spec, opts, cfg_u.batch_size, seed, block)
        both("sln", f"SLN {cfg_u.name}", tr.scores, tr.spec.threshold, params=m.num_params(), fit_s=round(tr.fit_s, 1))
        got["sln"] = tr

    def do_gru() -> None:
        torch.manual_seed(seed)
        g = PacketGRU(cfg_u.input_size, H, cfg_u.n_classes)
        tg = P.train_split(g, cap, unsup_l, "reconstruct", spec, opts, cfg_u.batch_size, seed)
        both("gru", f"GRU H={H}", tg.scores, tg.spec.threshold, params=g.num_params(), fit_s=round(tg.fit_s, 1))

    def do_kitnet(key: str, ep: int) -> None:
        t0 = time.perf_counter()
        kn = KitNET(epochs=1 if quick else ep, seed=seed).fit(cap.ev.x[unsup_l.train])
        fit_s = time.perf_counter() - t0
        s = np.concatenate([kn.score(cap.ev.x[a:a + P.CHUNK]) for a in range(0, len(cap.y), P.CHUNK)])
        both(key, kn.name, s, calibrate_threshold(s[val_b], CAL_FPR), params=kn.num_params(), fit_s=round(fit_s, 1),
             clusters=[len(c) for c in kn.clusters])
        got.setdefault("kitnet", kn)

    def do_iforest() -> None:
        t0 = time.perf_counter()
        iso = ens.IsolationForest(n_estimators=200, random_state=seed).fit(cap.ev.x[unsup_l.train])
        fit_s = time.perf_counter() - t0
        s = -np.concatenate([iso.score_samples(cap.ev.x[a:a + P.CHUNK]) for a in range(0, len(cap.y), P.CHUNK)])
        both("iforest", "Isolation Forest", s, calibrate_threshold(s[val_b], CAL_FPR), fit_s=round(fit_s, 1))

    def do_sup(kind: str, t: str) -> None:
        sp = loao_l[t]
        if kind == "gbt":
            t0 = time.perf_counter()
            gbt = ens.HistGradientBoostingClassifier(max_iter=100, random_state=seed).fit(cap.ev.x[sp.train],
                                                                                           cap.y[sp.train])
            fit_s = time.perf_counter() - t0
            p = np.concatenate([gbt.predict_proba(cap.ev.x[a:a + P.CHUNK])[:, 1]
                                for a in range(0, len(cap.y), P.CHUNK)])
            res["loao"][t].append(_row("GBT", cap, loao[t], p, calibrate_threshold(p[val_b], CAL_FPR),
                                       key=kind, fit_s=round(fit_s, 1)))
            return
        torch.manual_seed(seed)
        m = SLN(cfg_s) if kind == "sup-sln" else PacketGRU(cfg_s.input_size, Hs, 2)
        r = P.train_split(m, cap, sp, "classify", spec_s, opts, cfg_s.batch_size, seed, block)
        name = f"SLN {cfg_s.name}" if kind == "sup-sln" else f"GRU H={Hs}"
        res["loao"][t].append(_row(name, cap, loao[t], r.scores, r.spec.threshold, key=kind, params=m.num_params(),
                                   fit_s=round(r.fit_s, 1)))

    def do_energy() -> None:
        scale = D.fit_scale(cap.ev.x[unsup_l.train & (cap.y == 0)])
        events = float((D.apply_scale(cap.ev.x[unsup.test], scale) != 0).sum(1).mean())
        rows = {f"SLN {cfg_u.name}": sln_ops_per_packet(cfg_u, events),
                f"SLN {cfg_s.name}": sln_ops_per_packet(cfg_s, events),
                f"GRU H={H}": gru_ops_per_packet(PacketGRU(cfg_u.input_size, H, cfg_u.n_classes), events)}
        if "kitnet" in got:
            rows[got["kitnet"].name] = (got["kitnet"].ops_per_packet(), got["kitnet"].footprints())
        for name, (ops, fp) in rows.items():
            res["energy"][name] = {"ops": ops, **energy_nj(ops, fp)}
        res["energy"]["input_events_per_packet"] = events

    def do_speed() -> None:
        if "sln" not in got or "kitnet" not in got:
            raise _Skip("speed needs sln and kitnet1 (or kitnet10) in --models")
        res["speed"] = speed(capture, got["sln"].model, got["sln"].spec, got["kitnet"],
                             limit=5000 if quick else None)

    fns: dict[str, Callable[[], None]] = {"sln": do_sln, "gru": do_gru, "kitnet1": lambda: do_kitnet("kitnet1", 1),
                                          "kitnet10": lambda: do_kitnet("kitnet10", 10), "iforest": do_iforest,
                                          "energy": do_energy, "speed": do_speed}
    for it in items:
        base, _, t = it.key.partition(":")
        try:
            prog.run(it, (lambda b=base, tt=t: do_sup(b, tt)) if t else fns[base])
        except _Skip as e:
            prog.skipped.append({"item": it.key, "reason": str(e)})
            prog.say(f"skip {it.key}: {e}")
    key = {"sup-sln": -3, "sup-gru": -2, "gbt": -1}
    res["unsupervised"].sort(key=lambda r: order[r["key"]])
    for t in all_types:
        res["loao"][t].sort(key=lambda r: key.get(r["key"], order[r["key"]]))
    res["loao"] = {t: rows for t, rows in res["loao"].items() if rows}
    res["skipped"], res["seconds"], res["seconds_total"] = prog.skipped, prog.timings, round(prog.elapsed(), 1)
    return res


class _Skip(Exception):
    """An item that cannot run with this selection (recorded in res["skipped"])."""


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
    bounds = "".join(f", {lab} {res[k]:,}" for k, lab in (("max_packets", "first"),
                                                           ("max_train_packets", "at most training packets"))
                     if res.get(k))
    L = [f"Capture `{res['capture']}` ({res['packets']:,} packets{bounds}), {res['steps']} training steps per neural "
         f"model, seed {res['seed']}, {res['date']}, {res['machine']}.", "",
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
    if res["energy"]:
        L += ["", f"**Estimated energy per packet** (fp32, `horowitz45`; model only, featurizer excluded; "
              f"{res['energy']['input_events_per_packet']:.1f} nonzero input features per packet):", "",
              "| model | MACs | nonlinear | weight bytes read | nJ / packet (compute + memory) |",
              "|---|---|---|---|---|"]
    for name, e in res["energy"].items():
        if isinstance(e, dict):
            o = e["ops"]
            L.append(f"| {name} | {o['macs']:,.0f} | {o['nonlin']:,.0f} | {o['weight_bytes']:,.0f} | "
                     f"{e['total_nj']:.2f} ({e['compute_nj']:.2f} + {e['memory_nj']:.2f}) |")
    if res.get("skipped"):
        L += ["", "**Not run:** " + "; ".join(f"{k['item']} ({k['reason']})" for k in res["skipped"]) + "."]
    s = res["speed"]
    if not s:
        return "\n".join(L)
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
    p.add_argument("--models", default="all",
                   help=f"comma-separated, run in this order: {', '.join(P.KNOWN)}; groups "
                        f"{', '.join(f'{g}' for g in P.GROUPS)} (sln.security.ids_bench_plan)")
    p.add_argument("--types", default=None, help="held-out attack types of the sup-* / gbt items (default all)")
    p.add_argument("--max-packets", type=int, default=None, help="use only the capture's first M packets")
    p.add_argument("--max-train-packets", type=int, default=None,
                   help="fit every model on at most N training packets (evenly spaced blocks of 256)")
    p.add_argument("--time-budget-s", type=float, default=None,
                   help="skip an item when the elapsed time plus its estimate would pass this")
    p.add_argument("--per-packet-sln", action="store_true",
                   help="score the SLN one packet at a time (default: the C block path of sln detect-net)")
    p.add_argument("--plan", action="store_true", help="print the plan and its estimate, run nothing")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--markdown", type=Path, default=None)
    a = p.parse_args(argv)
    for k in ("max_packets", "max_train_packets", "steps"):
        if getattr(a, k) is not None and getattr(a, k) < 1:
            p.error(f"--{k.replace('_', '-')} must be >= 1")
    try:
        P.parse_models(a.models)
    except ValueError as e:
        p.error(str(e))
    if not a.capture.exists():
        p.error(f"no capture {a.capture}: give a directory written by scripts/make_capture.sh")
    try:
        res = run(a.capture, a.quick, a.seed, a.steps, a.threads, a.device, a.models, a.types, a.max_packets,
                  a.max_train_packets, a.time_budget_s, not a.per_packet_sln, plan_only=a.plan)
    except ValueError as e:          # unknown --types, a capture whose splits do not work
        p.error(str(e))
    if a.plan:
        return 0
    md = markdown(res)
    print(md)
    if a.json:
        a.json.write_text(json.dumps(res, indent=1, default=float) + "\n")
    if a.markdown:
        a.markdown.write_text(md + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
