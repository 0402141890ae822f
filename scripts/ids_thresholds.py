"""Why the stored threshold does not hold under attack (issue 11, "thresholds under load"): measured causes.

    python scripts/ids_thresholds.py --capture DIR --model CHECKPOINT [--json out.json] [--skip-oracle]

For one trained unsupervised packet detector on a labelled capture (scripts/make_capture.sh output), the benign
false-positive rate at the stored threshold, in the attack windows (widened 1 s before, 5 s after, as
scripts/ids_full_eval.py) and in the benign gaps, under these variants of scoring the same packets:

  link        the deployed scoring: one liquid state through the whole link, features of the full stream;
  reset       the state reset before every packet (no liquid memory at all);
  key=src / key=pair / key=flow
              one state per source host / per unordered host pair / per featurizer flow, the cell's dt = the
              time since that key's previous packet (dt = 0 and a zeroed state at a key's first packet; no cap,
              no expiry): the candidates, before sln.security.keyed;
  pair        sln.security.keyed's per-host-pair state as `sln detect-net --state pair` runs it (bounded table,
              a new pair stepped with dt = the expiry);
  pair-flushed  the same with a table of one pair: the worst case of a table evicted by ever-new pairs;
  benign-state  features of the full stream, but the link state driven by the benign packets only (the attack
              packets skipped by the model, dt = gaps between benign packets): what the attack does through the
              state alone;
  clean       the attack packets removed from the pcap *before* featurizing, link state over the rest: the
              benign traffic as if no attack had happened (an oracle; needs the pcap rewritten, --skip-oracle
              leaves it and the substitutions out);
  clean:G     benign-state, with feature group G of every benign packet replaced by its clean value (G = host,
              chan, flow, dt): which part of the context carries the disturbance.

Plus, for the deployed scoring: the benign in-window false positives split by host role pair (src role -> dst
role) and by attack window, and the share of the weighted squared residual per feature group (which features
make the benign in-window packets score high). Reads the capture through the C featurizer; scores through the
C block scorer (sln.security.fastpath.BlockScorer).
"""
from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from sln.security import ids_data as D
from sln.security.fastpath import BlockScorer, read_events_fast
from sln.security.ids import load_ids
from sln.security.keyed import PAIR_CAP, pair_scores
from sln.security.metrics import calibrate_threshold, report
from sln.security.packets import FEATURE_NAMES, load_labels

GROUPS = {"header": list(range(0, 19)), "host": list(range(21, 33)), "chan": list(range(33, 45)),
          "flow": [19, 20, *range(45, 57)], "dt": [57]}


def load_fast(d: Path) -> D.Capture:
    """D.load_capture with the C featurizer."""
    return D.load_capture(d, reader=read_events_fast)


def windows(cap: D.Capture) -> dict[str, np.ndarray]:
    """attack type -> mask of its manifest window widened by 1 s before and 5 s after."""
    win = json.loads((Path(cap.path) / "manifest.json").read_text())["windows_s"]
    t = cap.t_rel
    return {k: (t >= a - 1.0) & (t <= b + 5.0) for k, (a, b) in win.items()}


def role(a: np.ndarray) -> np.ndarray:
    """Host roles of the lab capture by address (docs/SECURITY_IDS.md "Hosts")."""
    a = a.astype(np.int64)
    b2, b3, b4 = (a >> 16) & 255, (a >> 8) & 255, a & 255
    out = np.full(len(a), "other", dtype=object)
    out[(b2 == 10) & (b4 == 1)] = "broker"
    out[(b2 == 10) & (b4 == 2)] = "web"
    out[(b2 == 10) & (b4 == 4)] = "dns"
    out[b2 == 20] = "sensor"
    out[(b2 == 30) & (b3 == 0)] = "poller"
    out[(b2 == 30) & (b3 == 1)] = "dashboard"
    out[b2 == 40] = "dnsclient"
    out[b2 == 66] = "attacker"
    return out


def keyed_scores(sc: BlockScorer, x: np.ndarray, ts: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """One state per key (fresh at the key's first packet), dt = gap since the key's previous packet."""
    order = np.lexsort((np.arange(len(keys)), keys))
    ks = keys[order]
    cut = np.r_[0, np.flatnonzero(np.diff(ks)) + 1, len(ks)]
    out = np.empty(len(keys), np.float64)
    for a, b in zip(cut[:-1], cut[1:]):
        idx = order[a:b]
        t = ts[idx]
        dt = np.r_[0.0, np.maximum(np.diff(t), 0.0)]
        sc.reset()
        out[idx] = sc.scores(x[idx], dt)
    return out


def link_scores(sc: BlockScorer, x: np.ndarray, dt: np.ndarray, block: int = 1 << 16) -> np.ndarray:
    sc.reset()
    return np.concatenate([sc.scores(x[i:i + block], dt[i:i + block]) for i in range(0, len(x), block)])


def clean_pcap(cap: D.Capture, out: Path) -> None:
    """Copy the capture's pcap without its attack records (labels by pcap record index)."""
    man = json.loads((Path(cap.path) / "manifest.json").read_text())
    lab, _ = load_labels(Path(cap.path) / man["labels"])
    data = (Path(cap.path) / man["pcap"]).read_bytes()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    rec = struct.Struct(endian + "IIII")
    parts, pos, i = [data[:24]], 24, 0
    while pos + 16 <= len(data):
        caplen = rec.unpack_from(data, pos)[2]
        end = pos + 16 + caplen
        if i < len(lab) and lab[i] == 0:
            parts.append(data[pos:end])
        pos, i = end, i + 1
    out.write_bytes(b"".join(parts))


def fpr_split(cap: D.Capture, sp: D.Split, s: np.ndarray, thr: float, inside: np.ndarray) -> dict[str, Any]:
    """Metrics at the stored threshold, and at a threshold re-calibrated (FPR 1e-3) on this variant's own
    validation scores (what a deployment of the variant would store)."""
    b = sp.test & (cap.y == 0)
    r = report(cap.y[sp.test], s[sp.test], thr) | {"eer": D.eer(cap.y[sp.test], s[sp.test])}
    rt = calibrate_threshold(s[sp.val & (cap.y == 0)], 1e-3)
    return {"roc_auc": r["roc_auc"], "tpr@1e-3": r["tpr@1e-3"], "eer": r["eer"], "tpr@thr": r["tpr@thr"],
            "fpr@thr": r["fpr@thr"], "fpr_in_windows": float((s[b & inside] > thr).mean()),
            "fpr_in_gaps": float((s[b & ~inside] > thr).mean()),
            "val_fpr": float((s[sp.val] > thr).mean()), "recal_thr": rt,
            "recal": {"tpr": float((s[sp.test & (cap.y == 1)] > rt).mean()), "fpr": float((s[b] > rt).mean()),
                      "fpr_in_windows": float((s[b & inside] > rt).mean()),
                      "fpr_in_gaps": float((s[b & ~inside] > rt).mean())}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--capture", type=Path, required=True)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--skip-oracle", action="store_true", help="no clean re-featurization (saves a pcap rewrite)")
    p.add_argument("--variants", default="link,reset,key=src,key=pair,key=flow,benign-state")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    cap = load_fast(a.capture)
    sp = D.unsupervised_split(cap)
    model, spec = load_ids(a.model)
    thr = float(spec.threshold)
    sc = BlockScorer(model, spec)
    wins = windows(cap)
    inside = np.zeros(len(cap.y), bool)
    for m in wins.values():
        inside |= m
    ev = cap.ev
    res: dict[str, Any] = {"capture": str(a.capture), "model": str(a.model), "threshold": thr,
                           "packets": len(cap.y), "test_benign": int((sp.test & (cap.y == 0)).sum()),
                           "benign_in_windows": int((sp.test & (cap.y == 0) & inside).sum()), "variants": {}}
    print(json.dumps({k: v for k, v in res.items() if k != "variants"}), flush=True)
    base = None
    hosts = ev.src.astype(np.int64), ev.dst.astype(np.int64)
    keys = {"key=src": hosts[0], "key=pair": np.minimum(*hosts) << 32 | np.maximum(*hosts),
            "key=flow": ev.flow_id.astype(np.int64), "reset": np.arange(len(cap.y))}
    ben = cap.y == 0
    for v in a.variants.split(","):
        t1 = time.perf_counter()
        if v == "link":
            s = base = link_scores(sc, ev.x, ev.dt.astype(np.float64))
        elif v == "equilibrium":     # the link state, but every packet after a long gap (1000 s)
            s = link_scores(sc, ev.x, np.full(len(cap.y), 1000.0))
        elif v in ("pair", "pair-flushed"):   # sln.security.keyed as detect-net runs it (flushed: a cap of 1 pair,
            # so every packet whose pair differs from the previous packet's starts from a fresh state: the worst
            # case of an attacker evicting the table with ever-new spoofed pairs)
            s = pair_scores(model, spec, ev.x, ev.ts, ev.src, ev.dst, cap=1 if v == "pair-flushed" else PAIR_CAP)
        elif v in keys:
            s = keyed_scores(sc, ev.x, ev.ts, keys[v])
        elif v == "benign-state":
            s = np.full(len(cap.y), np.nan)
            s[ben] = keyed_scores(sc, ev.x[ben], ev.ts[ben], np.zeros(int(ben.sum()), np.int64))
        else:
            raise SystemExit(f"unknown variant {v}")
        if v == "benign-state":
            b = sp.test & ben
            r = {"fpr_in_windows": float((s[b & inside] > thr).mean()),
                 "fpr_in_gaps": float((s[b & ~inside] > thr).mean())}
        else:
            r = fpr_split(cap, sp, s, thr, inside)
            pthr = (spec.state_thresholds or {}).get("pair")
            if v.startswith("pair") and pthr is not None:   # at the pair threshold stored in the checkpoint
                b = sp.test & ben
                r["at_stored_pair_thr"] = {"thr": pthr, "tpr": float((s[sp.test & ~ben] > pthr).mean()),
                                           "fpr": float((s[b] > pthr).mean()),
                                           "fpr_in_windows": float((s[b & inside] > pthr).mean()),
                                           "fpr_in_gaps": float((s[b & ~inside] > pthr).mean())}
        r["seconds"] = round(time.perf_counter() - t1, 1)
        res["variants"][v] = r
        print(v, json.dumps(r), flush=True)
    if base is None:
        base = link_scores(sc, ev.x, ev.dt.astype(np.float64))
    # where the deployed scoring's benign in-window false positives are
    b = sp.test & ben & inside
    fp = b & (base > thr)
    pair = np.array([f"{s}->{d}" for s, d in zip(role(ev.src[b]), role(ev.dst[b]))])
    fpp = fp[b]
    res["by_role"] = {k: {"benign": int((pair == k).sum()), "fpr@thr": float(fpp[pair == k].mean())}
                      for k in sorted(set(pair.tolist()))}
    res["by_window"] = {k: {"benign": int((b & m).sum()), "fpr@thr": float((base[b & m] > thr).mean()) if (b & m).any()
                            else None} for k, m in wins.items()}
    # share of the weighted squared residual per feature group: in-window benign vs gap benign
    idx_w, idx_g = np.flatnonzero(b), np.flatnonzero(sp.test & ben & ~inside)
    res["residual_share"] = {}
    for name, idx in (("in_windows", idx_w), ("in_gaps", idx_g), ("validation", np.flatnonzero(sp.val))):
        r2 = residual_sq(sc, model, spec, ev.x, ev.dt.astype(np.float64), idx)
        tot = r2.sum()
        res["residual_share"][name] = {g: round(float(r2[:, c].sum() / tot), 4) for g, c in GROUPS.items()} | {
            "mean_sq_per_packet": float(r2.sum(1).mean()),
            "top_features": [FEATURE_NAMES[i] for i in np.argsort(-r2.sum(0))[:6]]}
    print("by_role", json.dumps(res["by_role"]), "\nby_window", json.dumps(res["by_window"]),
          "\nresidual_share", json.dumps(res["residual_share"]), flush=True)
    if not a.skip_oracle:
        oracle(a, cap, sp, sc, thr, inside, res)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    return 0


def residual_sq(sc: BlockScorer, model: Any, spec: Any, x: np.ndarray, dt: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Per-feature weighted squared residuals (len(idx), D) of the link-state scoring at packets idx (sorted):
    the C block scorer runs the stream up to each wanted packet, steps it, and its winners are read back."""
    w_out = model.readout.weight.detach().numpy().astype(np.float32)
    b_out = model.readout.bias.detach().numpy().astype(np.float32)
    inv = (1.0 / np.asarray(spec.scale, np.float64)).astype(np.float32)
    wt = np.asarray(spec.resid_weight, np.float64)
    out = np.empty((len(idx), x.shape[1]), np.float64)
    sc.reset()
    pos = 0
    for j, i in enumerate(idx):
        if i > pos:
            sc.scores(x[pos:i], dt[pos:i])
        s = sc.scores(x[i:i + 1], dt[i:i + 1])[0]
        xs = np.clip(x[i] * inv, -spec.clip, spec.clip).astype(np.float32)
        r = ((winners_readout(sc, model, w_out, b_out).astype(np.float64) - xs) * wt) ** 2
        if abs(np.sqrt(r.mean()) - s) > 1e-4 * max(1.0, s):
            raise SystemExit(f"state layout mismatch: score {s} vs replay {np.sqrt(r.mean())}")
        out[j] = r
        pos = i + 1
    return out


def winners_readout(sc: BlockScorer, model: Any, w_out: np.ndarray, b_out: np.ndarray) -> np.ndarray:
    """W_out y + b of the top layer's winners held in the block scorer's C state (runtime/sln.c layout)."""
    cfg = model.cfg
    N, k, L = cfg.n_neurons, cfg.k, cfg.n_layers
    a4 = lambda v: (v + 3) & ~3  # noqa: E731
    raw = sc.state.view(np.uint8)
    off_wi = L * a4(4 * N)
    off_wv = off_wi + L * a4(2 * k)
    off_nw = off_wv + L * a4(4 * k)
    nw = int(raw[off_nw + 4 * (L - 1):off_nw + 4 * L].view(np.int32)[0])
    wi = raw[off_wi + (L - 1) * a4(2 * k):][:2 * k].view(np.uint16)[:nw].astype(np.intp)
    wv = raw[off_wv + (L - 1) * a4(4 * k):][:4 * k].view(np.float32)[:nw]
    return w_out[:, wi] @ wv + b_out


def oracle(a: argparse.Namespace, cap: D.Capture, sp: D.Split, sc: BlockScorer, thr: float, inside: np.ndarray,
           res: dict[str, Any]) -> None:
    t1 = time.perf_counter()
    tmp = (a.json.parent if a.json else Path(".")) / "clean_capture.pcap"
    clean_pcap(cap, tmp)
    cev = read_events_fast(tmp)
    tmp.unlink()
    ben = np.flatnonzero(cap.y == 0)
    if len(cev) != len(ben):
        raise SystemExit(f"clean capture has {len(cev)} packets for {len(ben)} benign ones")
    ev = cap.ev
    b_test = sp.test[ben]
    b_in = inside[ben]
    out = {}
    s = link_scores(sc, cev.x, cev.dt.astype(np.float64))
    out["clean"] = {"fpr_in_windows": float((s[b_test & b_in] > thr).mean()),
                    "fpr_in_gaps": float((s[b_test & ~b_in] > thr).mean())}
    xb = ev.x[ben]
    dtb = np.r_[0.0, np.maximum(np.diff(ev.ts[ben]), 0.0)]
    changed = {}
    for g, cols in GROUPS.items():
        if g == "header":
            continue
        xg = xb.copy()
        xg[:, cols] = cev.x[:, cols]
        changed[g] = float(np.mean(np.any(xb[:, cols] != cev.x[:, cols], axis=1)[b_test & b_in]))
        s = link_scores(sc, xg, dtb)
        out[f"clean:{g}"] = {"fpr_in_windows": float((s[b_test & b_in] > thr).mean()),
                             "fpr_in_gaps": float((s[b_test & ~b_in] > thr).mean())}
    for g in ("host", "chan"):      # all but one group clean: is that group enough on its own?
        xg = cev.x.copy()
        xg[:, GROUPS[g]] = xb[:, GROUPS[g]]
        s = link_scores(sc, xg, dtb)
        out[f"clean-except:{g}"] = {"fpr_in_windows": float((s[b_test & b_in] > thr).mean()),
                                    "fpr_in_gaps": float((s[b_test & ~b_in] > thr).mean())}
    res["oracle"] = out | {"in_window_packets_with_group_changed": changed,
                           "seconds": round(time.perf_counter() - t1, 1)}
    print("oracle", json.dumps(res["oracle"]), flush=True)


if __name__ == "__main__":
    sys.exit(main())
