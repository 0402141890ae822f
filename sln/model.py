"""The Sparse Liquid Network: stacked liquid cells plus a linear readout chosen by the config.

    x (B, T, D) --cell_1--> y^1 (B, T, N) --cell_2--> ... --> y^L (B, T, N)
    task "classify": logits = W_o mean_t(y^L_t) + b_o          (B, n_classes), over valid steps
    task "lm":       logits_t = W_o y^L_t + b_o                  (B, T, vocab), at every step
    task "events":   logits_t = W_o y^L_t + b_o                  (B, T, C), at every step, float input
                     events (network packets: one score or reconstruction per packet, sln/security/ids.py)

`SLN.step(x_t, state, dt)` is the only float step of the project: the sequence loop below,
the int8 calibration (sln/quant.py), the event-driven engine's reference (sln/engine.py),
streaming and generation all call it. For the character LM the input is token ids (B,):
the first cell reads one column of W_in (a gather, one input event of value 1).

The classifier's readout reads the running sum of sparse outputs: each step adds <= k values,
and the final matmul needs only the columns of neurons that fired at least once; the LM's
readout reads only the k winners of the step.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from .cell import LiquidCell, State, annealed_k
from .config import SLNConfig, get_config
from .device import win_rates

TASKS = ("classify", "lm", "events")
PER_STEP = ("lm", "events")   # tasks with a readout at every step (the others: one per sequence)


@dataclass
class Activity:
    """What fired during a sequence (for metrics and homeostasis; tensors stay on the model's device).

    active[l] (T,): share of neurons with a nonzero output at each step, over the valid samples;
    mean[l] (0-d): the same share over all valid (sample, step) pairs; fired[l] (N,) bool: fired
    (nonzero) at least once in the batch; wins[l] (N,): how often each neuron was selected, over
    valid (sample, step) pairs; n_valid (0-d): the number of such pairs.
    """
    active: list[torch.Tensor]
    mean: list[torch.Tensor]
    fired: list[torch.Tensor]
    wins: list[torch.Tensor]
    n_valid: torch.Tensor


@dataclass
class SeqOutput:
    logits: torch.Tensor          # classify: (B, C); lm: (B, T, V)
    state: list[State]            # state after the last step (carry it into the next window)
    activity: Activity


class SLN(nn.Module):
    def __init__(self, cfg: SLNConfig) -> None:
        super().__init__()
        if cfg.task not in TASKS:
            raise ValueError(f"unknown task {cfg.task!r}; choose one of {TASKS}")
        self.cfg = cfg
        sizes = [cfg.input_size] + [cfg.n_neurons] * cfg.n_layers
        self.cells = nn.ModuleList(
            LiquidCell(sizes[i], cfg.n_neurons, cfg.k, boost_beta=cfg.boost_beta,
                       duty_momentum=cfg.duty_momentum, lambda_min=cfg.lambda_min, ln_eps=cfg.ln_eps,
                       masked=cfg.density_in < 1.0 or cfg.density_rec < 1.0,
                       lambda_init=(cfg.lambda_init_min, cfg.lambda_init_max), st_grad=cfg.st_grad)
            for i in range(cfg.n_layers))
        self.readout = nn.Linear(cfg.n_neurons, cfg.n_classes)
        if cfg.readout == "mean_last":   # reads the top layer's liquid state h at each series' last valid step
            self.readout_last = nn.Linear(cfg.n_neurons, cfg.n_classes, bias=False)

    # --- streaming API ----------------------------------------------------
    def init_state(self, batch: int = 1) -> list[State]:
        dev = self.readout.weight.device
        return [c.init_state(batch, dev) for c in self.cells]

    def step(self, x_t: torch.Tensor, state: list[State], dt: torch.Tensor | float = 1.0,
             observe: Callable[[int, torch.Tensor], None] | None = None
             ) -> tuple[torch.Tensor, list[State], list[torch.Tensor]]:
        """x_t (B, D) float, or token ids (B,) long for the LM -> top-layer output y (B, N),
        new states, per-layer winner masks (B, N). observe(layer, a) sees each pre-activation
        a (B, 2N) (int8 calibration). For the LM's next-token logits: `self.readout(y)`."""
        new, masks, inp = [], [], x_t
        for i, (cell, s) in enumerate(zip(self.cells, state, strict=True)):
            inp, s, m = cell.step(inp, s, dt, observe=None if observe is None else (lambda a, i=i: observe(i, a)))
            new.append(s)
            masks.append(m)
        return inp, new, masks

    # --- whole sequence ---------------------------------------------------
    def run(self, x: torch.Tensor, dt: torch.Tensor | float | None = None, lengths: torch.Tensor | None = None,
            state: list[State] | None = None) -> SeqOutput:
        """x (B, T, D) (or ids (B, T) for the LM); dt None (=1.0), a float or (B, T) elapsed times;
        lengths (B,) valid steps per sample (right padding; classifier only); state to continue from.

        In training mode the homeostatic boost is updated from this call's win rates (valid steps only).
        """
        B, T = x.shape[0], x.shape[1]
        dev = x.device
        N = self.cfg.n_neurons
        lm = self.cfg.task in PER_STEP
        if lm and lengths is not None:
            raise ValueError("lengths (padding) is for classification; the LM streams unpadded text")
        valid = None if lengths is None else torch.arange(T, device=dev)[None, :] < lengths.to(dev)[:, None]
        state = self.init_state(B) if state is None else state
        acc = torch.zeros(B, N, device=dev)
        last = self.cfg.readout == "mean_last" and not lm
        h_last = torch.zeros(B, N, device=dev) if last else None
        outs = []
        wins = [torch.zeros(N, device=dev) for _ in self.cells]
        nz_sums = [torch.zeros((), device=dev) for _ in self.cells]
        active = [torch.zeros(T, device=dev) for _ in self.cells]
        fired = [torch.zeros(N, dtype=torch.bool, device=dev) for _ in self.cells]
        for t in range(T):
            dt_t = 1.0 if dt is None else (dt[:, t] if isinstance(dt, torch.Tensor) else dt)
            y, state, masks = self.step(x[:, t], state, dt_t)
            v = None if valid is None else valid[:, t, None]                  # (B, 1)
            if lm:
                outs.append(self.readout(y))
            else:
                acc = acc + (y if v is None else y * v)
                if last:   # the state of each series' last valid step (padding steps do not overwrite it)
                    h_top = state[-1][0]
                    h_last = h_top if v is None else torch.where(v, h_top, h_last)
            n_t = B if v is None else v.sum().clamp(min=1)                  # valid samples at step t
            for i, (m, s) in enumerate(zip(masks, state, strict=True)):
                nz = s[1].detach() != 0
                if v is not None:
                    m, nz = m & v, nz & v
                wins[i] += m.sum(0)
                nz_sums[i] += nz.sum() / N
                active[i][t] = nz.sum() / (N * n_t)
                fired[i] |= nz.any(0)
        # a fill, not torch.tensor(...): no host-to-device copy per batch, and B stays symbolic in an ONNX export
        n_valid = x.new_full((), B * T, dtype=torch.float32) if valid is None else valid.sum().float()
        if self.training:
            # under torchrun: the global batch's rates (all-reduced), so boosts agree on every rank
            for cell, rate in zip(self.cells, win_rates(wins, n_valid), strict=True):
                cell.update_boost(rate)
        if lm:
            logits = torch.stack(outs, 1)
        else:
            logits = self.readout(acc / (T if lengths is None else lengths.to(dev)[:, None].float()))
            if last:
                logits = logits + self.readout_last(h_last)
        mean = [z / n_valid for z in nz_sums]
        return SeqOutput(logits, state, Activity(active, mean, fired, wins, n_valid))

    def forward(self, x: torch.Tensor, dt: torch.Tensor | float | None = None, lengths: torch.Tensor | None = None,
                return_activity: bool = False, state: list[State] | None = None, return_output: bool = False):
        """-> logits (classify (B, C); lm (B, T, V)), or (logits, Activity) with return_activity, or with
        return_output the whole SeqOutput (logits, state after the last step, activity). state: continue
        from it (the LM's carried windows come through forward this way, so that torchrun's
        DistributedDataParallel, which only sees forward, can train them)."""
        out = self.run(x, dt, lengths, state)
        if return_output:
            return out
        return (out.logits, out.activity) if return_activity else out.logits

    def anneal(self, progress: float) -> None:
        """k annealing (cfg.k_anneal): set every cell's training k for this share of training done."""
        for c in self.cells:
            c.k_train = annealed_k(progress, c.n_neurons, c.k, self.cfg.k_anneal) if self.cfg.k_anneal > 0 else None

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def stream(self, batch: int = 1) -> Stream:
        """Constant-memory streaming inference (see Stream): the way to run step by step."""
        return Stream(self, batch)


class Stream:
    """Streaming inference whose memory does not grow with the stream's length.

    Holds the state and runs every step under `torch.inference_mode`, so no autograd graph links
    one step to the next (calling `model.step` in a loop with gradients enabled keeps every
    step's graph alive: about 27 KB per step for sln-small). The model is put in eval mode
    (boost frozen), as for any inference.

        stream = model.stream()
        for x_t, dt in events:                 # x_t (1, D) float, or ids (1,) for the LM
            y = stream.step(x_t, dt)           # (1, N) sparse output of the top layer
        logits = stream.logits()               # classify: mean readout so far; lm: next-token logits
    """

    def __init__(self, model: SLN, batch: int = 1) -> None:
        self.model = model.eval()
        self.reset(batch)

    def reset(self, batch: int = 1) -> None:
        with torch.inference_mode():
            self.state = self.model.init_state(batch)
            self.acc = torch.zeros(batch, self.model.cfg.n_neurons, device=self.model.readout.weight.device)
            self.y = torch.zeros_like(self.acc)
        self.steps = 0

    def step(self, x_t: torch.Tensor, dt: torch.Tensor | float = 1.0) -> torch.Tensor:
        with torch.inference_mode():
            self.y, self.state, self.masks = self.model.step(x_t, self.state, dt)
            self.acc += self.y
        self.steps += 1
        return self.y

    def logits(self) -> torch.Tensor:
        """classify: W_o mean(y over the steps so far) + b (B, C); lm: the next token's logits (B, V)."""
        with torch.inference_mode():
            if self.model.cfg.task in PER_STEP:
                return self.model.readout(self.y)
            logits = self.model.readout(self.acc / max(1, self.steps))
            if self.model.cfg.readout == "mean_last":
                logits = logits + self.model.readout_last(self.state[-1][0])
            return logits


def create_model(name: str, **overrides) -> SLN:
    """Build a registered model by name (the config's task picks the readout); unknown names fail
    listing the known ones."""
    return SLN(get_config(name, **overrides))


def code_images(images: torch.Tensor, pool: int = 1, threshold: int = 0) -> torch.Tensor:
    """uint8 images (B, H, W) -> uint8 (B, H/pool, W/pool): the mean of each pool x pool block
    (rounded half up), then values <= threshold set to 0. Staying uint8 keeps the input scale
    (x / 255) that the int8 exporter and the engine assume."""
    if pool > 1:
        B, H, W = images.shape
        if H % pool or W % pool:
            raise ValueError(f"input_pool {pool} must divide the image size {H}x{W}")
        s = images.reshape(B, H // pool, pool, W // pool, pool).sum((2, 4), dtype=torch.int32)
        images = ((s + pool * pool // 2) // (pool * pool)).to(torch.uint8)
    if threshold > 0:
        images = images.masked_fill(images <= threshold, 0)
    return images


def encode_images(images: torch.Tensor, cfg: SLNConfig) -> torch.Tensor:
    """uint8 images (B, H, W) -> the model's float input (B, T, input_size) under the config's input
    coding (input_pool, input_threshold). Every consumer of image input (training, evaluation,
    int8 calibration, engine, benchmark) should call this, not images_to_sequence directly: a pooled
    config's input_size may also divide the unpooled image, so the wrong call would not fail."""
    return images_to_sequence(code_images(images, cfg.input_pool, cfg.input_threshold), cfg.input_size)


def images_to_sequence(images: torch.Tensor, input_size: int) -> torch.Tensor:
    """uint8 images (B, H, W) -> float (B, H*W/input_size, input_size) in [0, 1].

    Pixels are divided by 255 with no mean shift, so the background stays exactly zero and
    acts as "no event" for the event-driven engine.
    """
    B = images.shape[0]
    n = images[0].numel()
    if n % input_size:
        raise ValueError(f"input_size {input_size} must divide the image size {n}")
    return images.reshape(B, n // input_size, input_size).float().div_(255.0)
