"""Character-LM benchmark: SLN char-LM vs the GPT baseline of equal parameter count.

`run_lm_benchmark(args)` (called by `benchmark.py --task lm`; also `python -m sln.lm_bench`)
reports for both models: validation bits per character, parameters, operations and estimated
energy **per generated token** at contexts 64, 256 and 1024, and tokens per second at batch 1.

Operation counts are analytic, per generated token, fp32, batch 1:
  SLN (per layer, N neurons, k winners, V characters): the input character is one column of
    W_in (2N accumulates), the recurrent term reads only the k previous winners' columns
    (2N*k MACs; deeper layers also 2N*k for their input), LayerNorm (3N adds, 3N multiplies,
    1 rsqrt), ReLU (N compares), softplus (2 nonlinear + 1 add per neuron), alpha (1 multiply +
    1 exp), the update (2 adds, 2 multiplies), the boost (N multiplies), k-WTA (N*ceil(log2 k)
    compares), and the readout of the k winners (k*V MACs + V adds). Nothing depends on the
    context length.
  GPT with a KV cache at context c (d model width, L layers): per layer 12 d^2 MACs (QKV,
    projection, 4x MLP) + 2 c d MACs of attention + c exp/add for the softmax + two LayerNorms +
    4d GELUs; plus the tied output head V*d MACs. Memory: every weight is read once per token,
    plus the KV cache (2 c d values per layer) read and one new entry written.
  Both: the final softmax/sampling over V is the same for both models and is left out.
Energy applies `sln.energy` (Horowitz 45 nm table, see that module) to these counts, weights
priced at the memory level that holds the whole fp32 model and activations at the level that
holds each model's working set (SLN: its state; GPT: its KV cache, which grows with c).
Tokens per second are measured wall-clock in PyTorch eager mode on this CPU (Python overhead
dominates both at these sizes), after priming each model with c characters, best of 3 runs.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from .lm import GPTLM, SLNLM, eval_bpc, load_lm, prepare

CONTEXTS = (64, 256, 1024)
SLN_CKPT = Path("runs/shakespeare-sln-lm-small/checkpoint.safetensors")
GPT_CKPT = Path("runs/shakespeare-gpt-baseline/checkpoint.safetensors")


def sln_ops_per_token(model: SLNLM) -> dict[str, float]:
    cfg = model.cfg
    N, k, V = cfg.n_neurons, cfg.k, cfg.n_classes
    ops = {"macs": 0.0, "acs": 0.0, "adds": 0.0, "muls": 0.0, "cmps": 0.0, "nonlin": 0.0,
           "weight_bytes": 0.0, "act_bytes": 0.0}
    for layer in range(cfg.n_layers):
        in_cols = 1 if layer == 0 else k                     # one-hot char / winners of the layer below
        if layer == 0:
            ops["acs"] += 2 * N                              # column of W_in added to the bias
        else:
            ops["macs"] += 2 * N * k
            ops["adds"] += 2 * N
        ops["macs"] += 2 * N * k                             # W_rec: previous winners' columns only
        ops["adds"] += 3 * N + 1 * N + 2 * N                 # LayerNorm, lambda_min, update
        ops["muls"] += 3 * N + 1 * N + 2 * N + N             # LayerNorm, lam*dt, update, boost
        ops["nonlin"] += 1 + 2 * N + N                       # rsqrt, softplus (exp+log1p), exp(-lam dt)
        ops["cmps"] += N + N * max(1, math.ceil(math.log2(max(k, 2))))   # ReLU, k-WTA
        # weights read: the columns used + bias + LayerNorm affine
        ops["weight_bytes"] += 4 * (2 * N * in_cols + 2 * N * k + 2 * N + 2 * N)
        ops["act_bytes"] += 4 * (2 * N * 2 + N * 2 + k)      # a written/read, h read/written, winners
    ops["macs"] += k * V                                     # readout reads the k winners only
    ops["adds"] += V
    ops["weight_bytes"] += 4 * (k * V + V)
    return ops


def gpt_ops_per_token(model: GPTLM, c: int) -> dict[str, float]:
    cfg = model.cfg
    d, L, V, H = cfg.d_model, cfg.n_layers, cfg.vocab_size, cfg.n_heads
    per = {"macs": 12 * d * d + 2 * c * d, "adds": 2 * d + c * H + 2 * 3 * d + 2 * d,
           "muls": 2 * 3 * d + c * H, "nonlin": c * H + 2 + 4 * d, "cmps": 0.0}
    ops = {k: float(v) * L for k, v in per.items()}
    ops["acs"] = float(d)                                    # embedding row + position
    ops["macs"] += V * d                                     # tied head
    ops["adds"] += 3 * d
    ops["muls"] += 3 * d
    ops["nonlin"] += 1
    ops["weight_bytes"] = 4.0 * model.num_params()           # every weight once per token
    ops["act_bytes"] = 4.0 * L * (2 * c * d + 2 * d) + 4.0 * 8 * d * L
    return ops


def total_ops(ops: dict[str, float]) -> float:
    """Arithmetic operations, a MAC counted as 2 (multiply + add)."""
    return 2 * ops["macs"] + ops["acs"] + ops["adds"] + ops["muls"] + ops["cmps"] + ops["nonlin"]


def _energy(ops: dict[str, float], weight_bytes: float, act_bytes: float) -> dict[str, Any] | None:
    try:
        from .energy import estimate_pj
    except ImportError:     # energy model absent: ops only
        return None
    return estimate_pj(ops, weight_bytes, act_bytes, precision="fp32")


@torch.no_grad()
def tokens_per_second(model: SLNLM | GPTLM, c: int, n: int = 64, repeats: int = 3) -> float:
    """Batch-1 decode speed after priming with c characters (random ids; speed only).

    Best of `repeats` timings of n tokens each: on a shared machine the fastest run is the one
    least disturbed by other processes.
    """
    g = torch.Generator().manual_seed(0)
    V = model.cfg.n_classes if isinstance(model, SLNLM) else model.cfg.vocab_size
    prime = torch.randint(0, V, (c,), generator=g)
    model.eval()
    best = 0.0
    for _ in range(repeats):
        if isinstance(model, SLNLM):
            state = model.init_state(1)
            for i in prime:
                _, state, _ = model.step(i.view(1), state)
            cur = prime[-1:]
            t0 = time.perf_counter()
            for _ in range(n):
                logits, state, _ = model.step(cur, state)
                cur = logits.argmax(-1)
        else:
            logits, caches = model(prime[None])
            cur = logits[:, -1].argmax(-1)
            t0 = time.perf_counter()
            for j in range(n):
                logits, caches = model(cur.view(1, 1), caches, offset=c + j)
                cur = logits[:, -1].argmax(-1)
        best = max(best, n / (time.perf_counter() - t0))
    return best


def _quick_models(tmp: Path) -> tuple[Path, Path]:
    """--quick without trained checkpoints: train both for 20 s each on the real text."""
    from .config import get_config
    from .lm import GPTLM as G
    from .lm import gpt_config_for_params, init_unigram_bias, train_lm
    vocab, tr, va = prepare()
    cfg = get_config("sln-lm-small").replace(input_size=len(vocab), n_classes=len(vocab))
    torch.manual_seed(0)
    s = SLNLM(cfg)
    init_unigram_bias(s, tr)
    train_lm(s, vocab, tr, va[:5000], tmp / "sln", lr=cfg.lr, batch_size=cfg.batch_size, seed=0,
             time_budget_s=20, progress=False)
    gm = G(gpt_config_for_params(s.num_params(), len(vocab)))
    train_lm(gm, vocab, tr, va[:5000], tmp / "gpt", lr=3e-3, batch_size=32, seed=0, time_budget_s=20, progress=False)
    return tmp / "sln" / "checkpoint.safetensors", tmp / "gpt" / "checkpoint.safetensors"


def run_lm_benchmark(args: Any) -> int:
    """args: json (path or None), quick (bool); optional sln_checkpoint, gpt_checkpoint, contexts."""
    # batch-1 decoding is a chain of tiny ops: one thread is fastest and least noisy (SLN_THREADS overrides)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("SLN_THREADS", "1")))
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads_before)


def _run(args: Any) -> int:
    quick = bool(getattr(args, "quick", False))
    out_json = getattr(args, "json", None)
    sln_path = Path(getattr(args, "sln_checkpoint", None) or SLN_CKPT)
    gpt_path = Path(getattr(args, "gpt_checkpoint", None) or GPT_CKPT)
    contexts = tuple(getattr(args, "contexts", None) or CONTEXTS)
    tmpdir = None
    if not (sln_path.is_file() and gpt_path.is_file()):
        if not quick:
            print("lm benchmark: trained checkpoints missing. Train them with\n"
                  "  python train.py --dataset shakespeare --model sln-lm-small\n"
                  "  python -m sln.lm gpt --seconds 300\n"
                  f"(expected {sln_path} and {gpt_path}), or run with --quick.", file=sys.stderr)
            return 2
        tmpdir = tempfile.TemporaryDirectory()
        print("lm benchmark --quick: no trained checkpoints, training both for 20 s (numbers not comparable "
              "to the documented ones)")
        sln_path, gpt_path = _quick_models(Path(tmpdir.name))
    sln, vocab, sln_state = load_lm(sln_path)
    gpt, vocab2, gpt_state = load_lm(gpt_path)
    if vocab.chars != vocab2.chars or not isinstance(sln, SLNLM) or not isinstance(gpt, GPTLM):
        print("lm benchmark: the checkpoints must be an SLN LM and a GPT baseline with the same vocabulary",
              file=sys.stderr)
        return 2
    _, _, val = prepare()
    if quick:
        val = val[:20_000]
    res: dict[str, Any] = {"task": "lm", "dataset": "shakespeare (val: hamlet, macbeth, tempest)",
                           "val_chars": int(len(val)), "precision": "fp32", "threads": torch.get_num_threads(),
                           "models": {}}
    sln_w = 4.0 * sln.num_params()
    gpt_w = 4.0 * gpt.num_params()
    for name, model, state in (("sln", sln, sln_state), ("gpt", gpt, gpt_state)):
        ev = eval_bpc(model, val)
        entry: dict[str, Any] = {"checkpoint": str(sln_path if name == "sln" else gpt_path),
                                 "params": model.num_params(), "val_bpc": ev["bpc"],
                                 "train_seconds": state.get("train_seconds"), "train_chars": state.get("chars"),
                                 "per_token": {}}
        if name == "sln":
            entry["config"] = {"n_neurons": model.cfg.n_neurons, "k": model.cfg.k, "layers": model.cfg.n_layers}
            entry["active_fraction"] = ev.get("active_fraction")
        else:
            entry["config"] = {"d_model": model.cfg.d_model, "layers": model.cfg.n_layers, "ctx": model.cfg.ctx}
        for c in contexts:
            if name == "sln":
                ops = sln_ops_per_token(model)
                act_fp = 4.0 * model.cfg.n_layers * 4 * model.cfg.n_neurons
                wfp = sln_w
            else:
                ops = gpt_ops_per_token(model, c)
                act_fp = 4.0 * model.cfg.n_layers * 2 * c * model.cfg.d_model
                wfp = gpt_w
            e = _energy(ops, wfp, act_fp)
            entry["per_token"][str(c)] = {
                "macs": ops["macs"], "ops": total_ops(ops), "weight_bytes": ops["weight_bytes"],
                "energy_uj": None if e is None else e["total"] * 1e-6,
                "energy_terms_pj": None if e is None else {k: e[k] for k in ("compute", "memory", "weight_level",
                                                                              "act_level")},
                "tokens_per_s_batch1": tokens_per_second(model, c, n=32 if quick else 128),
            }
        res["models"][name] = entry
    s, g = res["models"]["sln"], res["models"]["gpt"]
    res["ratios"] = {str(c): {"ops_gpt_over_sln": g["per_token"][str(c)]["ops"] / s["per_token"][str(c)]["ops"],
                              "energy_gpt_over_sln": (None if s["per_token"][str(c)]["energy_uj"] is None else
                                                      g["per_token"][str(c)]["energy_uj"]
                                                      / s["per_token"][str(c)]["energy_uj"])}
                     for c in contexts}
    res["bpc_gap_percent"] = 100.0 * (s["val_bpc"] - g["val_bpc"]) / g["val_bpc"]
    res["energy_model"] = "sln.energy (Horowitz 45 nm, fp32)" if s["per_token"][str(contexts[0])]["energy_uj"] \
        is not None else "none (sln.energy absent): ops only"
    _print(res, contexts)
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(res, indent=2))
        print(f"wrote {out_json}")
    if tmpdir is not None:
        tmpdir.cleanup()
    return 0


def _print(res: dict[str, Any], contexts: tuple[int, ...]) -> None:
    print(f"character LM on Shakespeare, validation {res['val_chars']:,} chars, fp32, batch 1")
    print(f"{'model':<6}{'params':>10}{'val bpc':>9}{'ctx':>6}{'MACs/tok':>11}{'ops/tok':>11}{'uJ/tok':>9}"
          f"{'tok/s':>8}")
    for name, m in res["models"].items():
        for c in contexts:
            p = m["per_token"][str(c)]
            e = "-" if p["energy_uj"] is None else f"{p['energy_uj']:.2f}"
            print(f"{name:<6}{m['params']:>10,}{m['val_bpc']:>9.3f}{c:>6}{p['macs']:>11,.0f}{p['ops']:>11,.0f}"
                  f"{e:>9}{p['tokens_per_s_batch1']:>8.0f}")
    for c in contexts:
        r = res["ratios"][str(c)]
        er = "-" if r["energy_gpt_over_sln"] is None else f"{r['energy_gpt_over_sln']:.1f}x"
        print(f"context {c}: GPT/SLN ops {r['ops_gpt_over_sln']:.1f}x, energy {er}")
    print(f"SLN bits/char vs GPT: {res['bpc_gap_percent']:+.1f} %")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sln.lm_bench")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--sln-checkpoint", type=Path, default=None)
    p.add_argument("--gpt-checkpoint", type=Path, default=None)
    return run_lm_benchmark(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
