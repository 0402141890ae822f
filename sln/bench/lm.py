"""Character-LM benchmark (`benchmark.py --task lm`, `python -m sln.bench.lm`): SLN vs GPT of equal size.

`run_lm_benchmark(args)` reports for both models: validation bits per character, parameters,
operations and estimated energy **per generated token** at contexts 64, 256 and 1024, and
tokens per second at batch 1.

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
Energy applies `sln.energy` (Horowitz 45 nm table, see that module) to these counts through the
same `measure.energy` as the image benchmark, weights priced at the memory level that holds the
whole fp32 model and activations at the level that holds each model's working set (SLN: its
state; GPT: its KV cache, which grows with c). Tokens per second are measured wall-clock in
PyTorch eager mode on this CPU (Python overhead dominates both at these sizes), after priming
each model with c characters, best of 3 runs (`measure.best_rate`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..cell import State
from ..gpt import GPTLM
from ..model import SLN
from .measure import best_rate, energy, torch_threads, weight_footprint

CONTEXTS = (64, 256, 1024)
SLN_CKPT = Path("runs/shakespeare-sln-lm-small/checkpoint.safetensors")
GPT_CKPT = Path("runs/shakespeare-gpt-baseline/checkpoint.safetensors")
ENERGY_MODEL = "sln.energy (Horowitz 45 nm, fp32)"


# --------------------------------------------------------------------------- the two model kinds
def is_gpt(model: torch.nn.Module) -> bool:
    """The GPT baseline (sln.gpt) rather than an SLN language model (sln.model.SLN, task "lm")."""
    return isinstance(model, GPTLM)


def vocab_size(model: torch.nn.Module) -> int:
    return int(model.cfg.vocab_size if is_gpt(model) else model.cfg.n_classes)


def sln_lm_step(model: SLN, ids: torch.Tensor, state: list[State]) -> tuple[torch.Tensor, list[State]]:
    """One character id per stream (B,) -> next-character logits (B, V), new state: the one
    float step (SLN.step -> the top layer's output y (B, N), <= k nonzeros), then the readout."""
    y, state, _ = model.step(ids, state)
    return model.readout(y), state


# --------------------------------------------------------------------------- counts per token
def sln_ops_per_token(model: SLN) -> dict[str, float]:
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
    ops["weight_bytes"] = float(weight_footprint(0, model.num_params()))   # every weight once per token
    ops["act_bytes"] = 4.0 * L * (2 * c * d + 2 * d) + 4.0 * 8 * d * L
    return ops


def total_ops(ops: dict[str, float]) -> float:
    """Arithmetic operations, a MAC counted as 2 (multiply + add)."""
    return 2 * ops["macs"] + ops["acs"] + ops["adds"] + ops["muls"] + ops["cmps"] + ops["nonlin"]


def act_footprint(model: torch.nn.Module, c: int) -> float:
    """fp32 bytes of the per-token working set: SLN its state (4 values of N per layer), GPT
    its KV cache at context c (2 c d per layer)."""
    if is_gpt(model):
        return 4.0 * model.cfg.n_layers * 2 * c * model.cfg.d_model
    return 4.0 * model.cfg.n_layers * 4 * model.cfg.n_neurons


# --------------------------------------------------------------------------- speed
@torch.no_grad()
def tokens_per_second(model: torch.nn.Module, c: int, n: int = 64, repeats: int = 3) -> float:
    """Batch-1 greedy decode speed after priming with c characters (random ids; speed only)."""
    g = torch.Generator().manual_seed(0)
    prime = torch.randint(0, vocab_size(model), (c,), generator=g)
    model.eval()
    if is_gpt(model):
        def setup() -> Any:
            logits, caches = model(prime[None])
            return logits[:, -1].argmax(-1), caches

        def step(carry: Any, j: int) -> Any:
            logits, caches = model(carry[0].view(1, 1), carry[1], offset=c + j)
            return logits[:, -1].argmax(-1), caches
    else:
        def setup() -> Any:
            state = model.init_state(1)
            for i in prime:
                _, state = sln_lm_step(model, i.view(1), state)
            return prime[-1:], state

        def step(carry: Any, j: int) -> Any:
            logits, state = sln_lm_step(model, carry[0], carry[1])
            return logits.argmax(-1), state
    return best_rate(setup, step, n, repeats)


# --------------------------------------------------------------------------- the run
def _quick_models(tmp: Path) -> tuple[Path, Path]:
    """--quick without trained checkpoints: train both for 20 s each on the real text."""
    from ..config import get_config
    from ..gpt import gpt_config_for_params
    from ..lm import init_unigram_bias, train_lm
    from ..text import prepare

    vocab, tr, va = prepare()
    cfg = get_config("sln-lm-small").replace(input_size=len(vocab), n_classes=len(vocab))
    torch.manual_seed(0)
    s = SLN(cfg)
    init_unigram_bias(s, tr)
    train_lm(s, vocab, tr, va[:5000], tmp / "sln", lr=cfg.lr, batch_size=cfg.batch_size, seed=0,
             time_budget_s=20, progress=False)
    gm = GPTLM(gpt_config_for_params(s.num_params(), len(vocab)))
    train_lm(gm, vocab, tr, va[:5000], tmp / "gpt", lr=3e-3, batch_size=32, seed=0, time_budget_s=20, progress=False)
    return tmp / "sln" / "checkpoint.safetensors", tmp / "gpt" / "checkpoint.safetensors"


def run_lm_benchmark(args: Any) -> int:
    """args: json (path or None), quick (bool); optional sln_checkpoint, gpt_checkpoint, contexts.
    Batch-1 decoding is a chain of tiny ops: one thread is fastest and least noisy (SLN_THREADS overrides)."""
    with torch_threads(int(os.environ.get("SLN_THREADS", "1"))):
        return _run(args)


def _model_entry(model: torch.nn.Module, path: Path, state: dict[str, Any], val: torch.Tensor,
                 contexts: tuple[int, ...], quick: bool) -> dict[str, Any]:
    from ..lm import eval_bpc

    ev = eval_bpc(model, val)
    entry: dict[str, Any] = {"checkpoint": str(path), "params": model.num_params(), "val_bpc": ev["bpc"],
                             "train_seconds": state.get("train_seconds"), "train_chars": state.get("chars"),
                             "per_token": {}}
    if is_gpt(model):
        entry["config"] = {"d_model": model.cfg.d_model, "layers": model.cfg.n_layers, "ctx": model.cfg.ctx}
    else:
        entry["config"] = {"n_neurons": model.cfg.n_neurons, "k": model.cfg.k, "layers": model.cfg.n_layers}
        entry["active_fraction"] = ev.get("active_fraction")
    wfp = weight_footprint(0, model.num_params())
    for c in contexts:
        ops = gpt_ops_per_token(model, c) if is_gpt(model) else sln_ops_per_token(model)
        e = energy(ops, wfp, act_footprint(model, c), None, "fp32")
        entry["per_token"][str(c)] = {
            "macs": ops["macs"], "ops": total_ops(ops), "weight_bytes": ops["weight_bytes"],
            "energy_uj": e["total"] * 1e-6,
            "energy_terms_pj": {k: e[k] for k in ("compute", "memory", "weight_level", "act_level")},
            "tokens_per_s_batch1": tokens_per_second(model, c, n=32 if quick else 128),
        }
    return entry


def _run(args: Any) -> int:
    from ..lm import load_lm
    from ..text import prepare

    quick = bool(getattr(args, "quick", False))
    out_json = getattr(args, "json", None)
    sln_path = Path(getattr(args, "sln_checkpoint", None) or SLN_CKPT)
    gpt_path = Path(getattr(args, "gpt_checkpoint", None) or GPT_CKPT)
    contexts = tuple(getattr(args, "contexts", None) or CONTEXTS)
    with tempfile.TemporaryDirectory() as tmp:
        if not (sln_path.is_file() and gpt_path.is_file()):
            if not quick:
                print("lm benchmark: trained checkpoints missing. Train them with\n"
                      "  python train.py --dataset shakespeare --model sln-lm-small\n"
                      "  python -m sln.lm gpt --seconds 300\n"
                      f"(expected {sln_path} and {gpt_path}), or run with --quick.", file=sys.stderr)
                return 2
            print("lm benchmark --quick: no trained checkpoints, training both for 20 s (numbers not comparable "
                  "to the documented ones)")
            sln_path, gpt_path = _quick_models(Path(tmp))
        sln, vocab, sln_state = load_lm(sln_path)
        gpt, vocab2, gpt_state = load_lm(gpt_path)
        if vocab.chars != vocab2.chars or is_gpt(sln) or not is_gpt(gpt):
            print("lm benchmark: the checkpoints must be an SLN LM and a GPT baseline with the same vocabulary",
                  file=sys.stderr)
            return 2
        _, _, val = prepare()
        if quick:
            val = val[:20_000]
        res: dict[str, Any] = {"task": "lm", "dataset": "shakespeare (val: hamlet, macbeth, tempest)",
                               "val_chars": int(len(val)), "precision": "fp32", "threads": torch.get_num_threads(),
                               "models": {}}
        res["models"]["sln"] = _model_entry(sln, sln_path, sln_state, val, contexts, quick)
        res["models"]["gpt"] = _model_entry(gpt, gpt_path, gpt_state, val, contexts, quick)
    s, g = res["models"]["sln"], res["models"]["gpt"]
    res["ratios"] = {str(c): {"ops_gpt_over_sln": g["per_token"][str(c)]["ops"] / s["per_token"][str(c)]["ops"],
                              "energy_gpt_over_sln": g["per_token"][str(c)]["energy_uj"]
                              / s["per_token"][str(c)]["energy_uj"]}
                     for c in contexts}
    res["bpc_gap_percent"] = 100.0 * (s["val_bpc"] - g["val_bpc"]) / g["val_bpc"]
    res["energy_model"] = ENERGY_MODEL
    print_lm(res, contexts)
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(res, indent=2))
        print(f"wrote {out_json}")
    return 0


def print_lm(res: dict[str, Any], contexts: tuple[int, ...]) -> None:
    print(f"character LM on Shakespeare, validation {res['val_chars']:,} chars, fp32, batch 1")
    print(f"{'model':<6}{'params':>10}{'val bpc':>9}{'ctx':>6}{'MACs/tok':>11}{'ops/tok':>11}{'uJ/tok':>9}"
          f"{'tok/s':>8}")
    for name, m in res["models"].items():
        for c in contexts:
            p = m["per_token"][str(c)]
            print(f"{name:<6}{m['params']:>10,}{m['val_bpc']:>9.3f}{c:>6}{p['macs']:>11,.0f}{p['ops']:>11,.0f}"
                  f"{p['energy_uj']:>9.2f}{p['tokens_per_s_batch1']:>8.0f}")
    for c in contexts:
        r = res["ratios"][str(c)]
        print(f"context {c}: GPT/SLN ops {r['ops_gpt_over_sln']:.1f}x, energy {r['energy_gpt_over_sln']:.1f}x")
    print(f"SLN bits/char vs GPT: {res['bpc_gap_percent']:+.1f} %")


def add_lm_arguments(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The LM benchmark's own flags (also a group of benchmark.py, used with --task lm)."""
    p.add_argument("--sln-checkpoint", type=Path, default=None, help="SLN language model checkpoint")
    p.add_argument("--gpt-checkpoint", type=Path, default=None, help="GPT baseline checkpoint")
    p.add_argument("--contexts", type=int, nargs="+", default=None, help="context lengths to measure")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sln.bench.lm")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--quick", action="store_true")
    add_lm_arguments(p)
    return run_lm_benchmark(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
