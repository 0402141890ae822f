"""Model configs and the name registry (one source of truth for every tool).

A config fully describes a model: the PyTorch model, the event-driven engine, the
int8 exporter and the C runtime all read their sizes from here, and checkpoints store
it as JSON so any tool can rebuild the model without pickle.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# (field, low, high): what the package supports; a config outside is refused before allocation.
LIMITS: tuple[tuple[str, float, float], ...] = (
    ("input_size", 1, 1 << 20), ("n_classes", 1, 1 << 20), ("n_neurons", 1, 1 << 16), ("n_layers", 1, 16),
    ("active_frac", 1e-9, 1.0), ("boost_beta", 0.0, 100.0), ("duty_momentum", 0.0, 1.0),
    ("lambda_min", 0.0, 1e3), ("ln_eps", 1e-12, 1.0), ("lr", 1e-12, 10.0), ("weight_decay", 0.0, 10.0),
    ("batch_size", 1, 1 << 20), ("epochs", 1, 100_000), ("augment_shift", 0, 14), ("train_drop", 0.0, 0.95),
    ("time_budget_s", 0.0, 1e7),
    ("density_in", 1e-4, 1.0), ("density_rec", 1e-4, 1.0), ("prune_start", 0.0, 1.0), ("prune_end", 0.0, 1.0),
    ("prune_every", 1, 1 << 20), ("input_pool", 1, 4), ("input_threshold", 0, 254),
    ("st_grad", 0.0, 1.0), ("k_anneal", 0.0, 1.0), ("lambda_init_min", 1e-6, 1e3), ("lambda_init_max", 1e-6, 1e3),
    ("max_series_steps", 0, 1 << 20), ("input_levels", 0, 64),
    ("min_steps", 0, 1 << 30),
)
READOUTS = ("mean", "mean_last")   # classify readouts (SLNConfig.readout)
SERIES_NORMS = ("global", "series")   # time-series input scaling (SLNConfig.series_norm)
MAX_WEIGHTS = 1 << 28   # 268 M liquid weights (1 GiB in float32): far above any named model


@dataclass
class SLNConfig:
    # --- input ---------------------------------------------------------------
    # An image enters as a sequence: each step sees `rows_per_step` image rows
    # flattened (so input_size = width * rows_per_step, steps = height / rows).
    # Fewer, wider steps cut the per-step elementwise work, the recurrent reads and the
    # loop overhead; 7 rows per step (4 steps) trained best after 1 epoch of the widths
    # measured (docs/DESIGN.md), so input_size = 28 * 7 = 196.
    input_size: int = 196
    n_classes: int = 10
    # the readout (sln/model.py): "classify": logits from the mean of the top layer's output over
    # all steps (images, time series); "lm": next-character logits at every step from the top
    # layer's winners, with the first layer's input the one-hot character (token ids in); "events":
    # the same per-step readout over float input events (packets; sln/security/ids.py)
    task: str = "classify"
    # --- liquid population(s) ---------------------------------------------
    n_neurons: int = 512          # population size N per layer
    n_layers: int = 1             # stacked liquid populations; layer l>0 reads layer l-1's sparse output
    active_frac: float = 0.03     # k = max(1, floor(active_frac * N)) neurons fire per step (never above the fraction)
    # Homeostasis (relative boost, after Ahmad & Scheinkman 2019): boost_i =
    # exp(boost_beta * (target - duty_i) / target) with target = k/N. 0 disables it.
    boost_beta: float = 1.0
    duty_momentum: float = 0.99   # EMA factor of the per-neuron duty cycle (per training batch)
    # Liquid decay rate lambda = softplus(v) + lambda_min (> 0 so every neuron forgets).
    lambda_min: float = 0.01
    ln_eps: float = 1e-5          # LayerNorm epsilon on the candidate pre-activation
    # --- training defaults (CLI flags override) ----------------------------
    lr: float = 4e-3              # 4e-3 beat 2e-3 in the trial
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 10
    seed: int = 0
    # image datasets only: random translation by up to this many pixels in training (0 = off). Without
    # it sln-small fit MNIST's training set to a loss of 0.002 and stalled at 97.9 % test;
    # with 2 px it reached 98.4 % by epoch 9 (docs/DESIGN.md). Same recipe for every family.
    augment_shift: int = 2
    # sequence tasks (sln/sequence_tasks.py): each training batch drops a random share in
    # [0, train_drop) of its time steps and passes the true elapsed dt (irregular-sampling
    # augmentation); 0 = train on the regular sequences. Ignored by the image trainer.
    train_drop: float = 0.0
    # wall-clock training budget in seconds (0 = train for `epochs`); the character LM uses it
    # for its equal-time comparison with the GPT baseline (sln/lm.py); every trainer honours it (sln/tasks/loop.py).
    time_budget_s: float = 0.0
    # --- learned weight sparsity (sln/prune.py) ------------------------------
    # Share of nonzero weights kept in every layer's W_in (2N, D) and W_rec (2N, N); 1.0 = dense.
    # Reached by gradual magnitude pruning (Zhu & Gupta 2017, arXiv:1710.01878): the density falls
    # along d(p) = target + (1 - target) (1 - p)^3 with p the progress from prune_start to prune_end
    # (shares of the run's steps); the masks are recomputed from |W| every prune_every steps and then
    # frozen. Why: a mask learned from trained magnitudes beat a fixed random mask by ~2 points at 10 %
    # in the calibration; the cubic prunes fast while weights are redundant and slowly near the
    # target; starting at 10 % lets magnitudes mean something first; ending at 60 % leaves the last
    # 40 % (the low-lr tail of the cosine) to recover with the mask fixed. Pruned weights are exactly 0.
    density_in: float = 1.0
    density_rec: float = 1.0
    prune_start: float = 0.1
    prune_end: float = 0.6
    prune_every: int = 50         # Zhu & Gupta's delta-t: ~47 mask updates over a 10-epoch MNIST run
    # --- input coding (images; sln.model.encode_images) -------------------------
    # Fewer input events: input_pool p averages p x p pixel blocks (28x28 -> 14x14 at p = 2; input_size
    # must then divide the pooled image, e.g. 49 = 4 steps of 7 original rows); input_threshold t zeroes
    # pixels <= t (uint8 scale) after pooling, dropping faint anti-aliased edges. 1 / 0 = off.
    input_pool: int = 1
    input_threshold: int = 0
    # --- training recipe levers (the time-series default recipe, issue 14; docs/SEQUENCES.md) ----------
    # st_grad g: straight-through gradient for the non-winners of k-WTA in training. Forward is unchanged
    # (y = h * mask); backward passes g * dL/dy to the losers' h as well, so neurons that do not fire yet
    # still learn whether they should (with g = 0 only the k winners of a step get a gradient). 0 = off.
    st_grad: float = 0.0
    # k_anneal a: k falls geometrically from N (dense) to k over the first share a of training
    # (sln.cell.annealed_k); evaluation and inference always use k. 0 = off.
    k_anneal: float = 0.0
    # classify readout: "mean" = W_o mean_t(y_t); "mean_last" also reads the last step's liquid state h_T
    # (one (C, N) matmul per series, at its end: what happened last is not diluted by the mean)
    readout: str = "mean"
    # lambda at zero input is initialised log-uniform in [lambda_init_min, lambda_init_max] (+ lambda_min),
    # i.e. time constants 1/lambda from 1/max to 1/min steps
    lambda_init_min: float = 0.1
    lambda_init_max: float = 2.0
    # time series: a series longer than this is cut into patches of s = ceil(T_max / max_series_steps)
    # consecutive samples, one patch per step (input_size = s * channels), so no set costs more than
    # max_series_steps cell steps per series. 0 = off. (sln.timeseries.patch_splits)
    max_series_steps: int = 0
    # time series: each (patched) input value enters as a soft thermometer code over this many levels
    # (sln.timeseries.level_code; input_size = levels * samples per step * channels). Why: the cell's
    # LayerNorm removes the scale of W_in x, so a univariate raw value would only tell its sign. 0 = raw.
    input_levels: int = 0
    # time series: "global" = the per-channel z-score with the training split's statistics only; "series" =
    # then also a z-score of every series on its own, with its per-channel mean and log-scale as 2 extra
    # input channels at every step (sln.timeseries.series_scale; input_size += 2 * channels). Offline only:
    # it reads the whole series, so a stream (the C runtime, sln.bench.ts_streams) needs "global".
    series_norm: str = "global"
    # time series, runs by epochs (no time budget): at least this many optimizer steps, i.e. epochs =
    # max(epochs, ceil(min_steps / batches per epoch)) (sln.sequence_tasks.prepare_ts), so a set of 36 series
    # (3 batches) is not stopped after 300 steps while a set of 537 gets 3,400. 0 = epochs as given.
    min_steps: int = 0
    # free-form tag of where the config came from (registry name)
    name: str = "custom"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Types and ranges of every field, checked before anything is allocated: a config from a
        flag, a JSON file or a checkpoint fails here with the field's name, not deep in torch."""
        hints = typing.get_type_hints(SLNConfig)
        for f in dataclasses.fields(self):
            v, want = getattr(self, f.name), hints[f.name]
            ok = isinstance(v, want) and not isinstance(v, bool) or (want is float and isinstance(v, int)
                                                                      and not isinstance(v, bool))
            if not ok:
                raise ValueError(f"config field {f.name} must be {want.__name__}, got {v!r}")
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"config field {f.name} must be finite, got {v!r}")
        for name, lo, hi in LIMITS:
            v = getattr(self, name)
            if not lo <= v <= hi:
                raise ValueError(f"config field {name}={v!r} is outside the supported range [{lo}, {hi}]")
        if self.task not in ("classify", "lm", "events"):
            raise ValueError(f"config field task must be 'classify', 'lm' or 'events', got {self.task!r}")
        if self.readout not in READOUTS:
            raise ValueError(f"config field readout must be one of {READOUTS}, got {self.readout!r}")
        if self.series_norm not in SERIES_NORMS:
            raise ValueError(f"config field series_norm must be one of {SERIES_NORMS}, got {self.series_norm!r}")
        if self.readout != "mean" and self.task != "classify":
            raise ValueError(f"config field readout={self.readout!r} is for task 'classify' only")
        if self.lambda_init_min > self.lambda_init_max:
            raise ValueError(f"config field lambda_init_min={self.lambda_init_min} must be <= lambda_init_max="
                             f"{self.lambda_init_max}")
        if self.prune_start > self.prune_end:
            raise ValueError(f"config field prune_start={self.prune_start} must be <= prune_end={self.prune_end}")
        weights = self.n_layers * (self.input_size + self.n_neurons) * 2 * self.n_neurons
        if weights > MAX_WEIGHTS:
            raise ValueError(f"this config has {weights:,} liquid weights, above the stated limit of "
                             f"{MAX_WEIGHTS:,} (reduce n_neurons, n_layers or input_size)")

    @property
    def k(self) -> int:
        return max(1, min(self.n_neurons, int(self.active_frac * self.n_neurons + 1e-9)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SLNConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def replace(self, **overrides: Any) -> SLNConfig:
        known = {f.name for f in dataclasses.fields(self)}
        bad = set(overrides) - known
        if bad:
            raise ValueError(f"unknown config fields {sorted(bad)}; known: {sorted(known)}")
        return dataclasses.replace(self, **overrides)


# Every named config lives in this file, so the registry is complete the moment it is imported:
# no task module has to be imported first (registration never depends on import side effects).
_REGISTRY: dict[str, Callable[[], SLNConfig]] = {}


def register(fn: Callable[[], SLNConfig]) -> Callable[[], SLNConfig]:
    """Add a named config (the function's name with '_' -> '-'); user code may register its own."""
    name = fn.__name__.replace("_", "-")
    _REGISTRY[name] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_config(name: str, **overrides: Any) -> SLNConfig:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    cfg = _REGISTRY[name]()
    cfg.name = name
    return cfg.replace(**overrides) if overrides else cfg


# Named models. Cost at inference follows k (and the input events), not N; the
# dense parameter count follows N^2, which is what bounds microcontroller flash.
@register
def sln_tiny() -> SLNConfig:
    # sized for a Cortex-M4: 235 k weights, a 249 kB int8 model file (docs/MCU.md)
    return SLNConfig(n_neurons=256, active_frac=0.03)


@register
def sln_small() -> SLNConfig:
    return SLNConfig(n_neurons=512, active_frac=0.03)


@register
def sln_base() -> SLNConfig:
    return SLNConfig(n_neurons=1024, active_frac=0.02)


# --- sparse-sparse: k-WTA activity x learned weight sparsity (sln/prune.py, docs/SPARSITY.md) ------
@register
def sln_small_s10() -> SLNConfig:
    # sln-small with 10 % of W_in and W_rec kept (gradual magnitude pruning)
    return SLNConfig(n_neurons=512, active_frac=0.03, density_in=0.1, density_rec=0.1)


@register
def sln_small_s5() -> SLNConfig:
    return SLNConfig(n_neurons=512, active_frac=0.03, density_in=0.05, density_rec=0.05)


@register
def sln_small_p2s10() -> SLNConfig:
    # 2x2-pooled input (14x14, 4 steps of 49 pixels = 7 original rows, as sln-small) at 10 % density
    return SLNConfig(input_size=49, n_neurons=512, active_frac=0.03, density_in=0.1, density_rec=0.1, input_pool=2)


@register
def sln_wide_s5() -> SLNConfig:
    # twice sln-small's population (k = 30) at 5 % density: about sln-small-s10's nonzero weights
    # (125 k) spread over more neurons; the calibration reached 98.21 % with it in 15 epochs;
    # measured here only for 8 epochs: 97.78 %, 29 k reads (docs/SPARSITY.md)
    return SLNConfig(n_neurons=1024, active_frac=0.03, density_in=0.05, density_rec=0.05)


@register
def sln_wide_s10() -> SLNConfig:
    # issue 9's accuracy candidate: N = 1024, k = 30 (dense: 98.61 % at 10 epochs, 98.86 % at 20) with
    # both matrices at 10 %. Measured 2026-12-02 (10,000 images, int8): 97.81 % after 6 epochs, 98.16 % after
    # 10 (15, the calibration, did not fit the shared machine's time); 2.04 uJ int8: at N = 1024 the
    # per-neuron vectors alone cost 0.71 uJ, so N = 512 (sln-small-s14) is the better trade (docs/SPARSITY.md)
    return SLNConfig(n_neurons=1024, active_frac=0.03, density_in=0.1, density_rec=0.1, epochs=10)


@register
def sln_wide_mcu() -> SLNConfig:
    # the Cortex-M4-sized variant: at N = 1024 the W_rec nonzeros (2N x N) dominate flash and the W_in
    # reads (2N per input event) dominate energy, so W_in is kept at 10 % (40 k nonzeros) and W_rec cut
    # to 2 % (42 k): with magnitude-pruned random weights the int8 .sln file is 234.6 kB at 2 % and
    # 276.1 kB at 3 % (over 256 kB with the firmware's ~7.6 kB of code); measured: docs/SPARSITY.md
    # 6 epochs for the reason given at sln-wide-s10
    return SLNConfig(n_neurons=1024, active_frac=0.03, density_in=0.1, density_rec=0.02, epochs=6)


@register
def sln_small_s13() -> SLNConfig:
    # the Cortex-M4 candidate after sln-wide-mcu: W_rec at 2 % of N = 1024 cost 1.2 points against 10 %
    # (96.80 % vs 98.00 % after 6 epochs, 1,000 test images), so the flash goes to sln-small's N = 512 at
    # 13 % of both matrices (94 k nonzeros; magnitude-pruned random weights: a 224.7 kB int8 .sln file);
    # N = 512 trains in ~1/3 of N = 1024's time, so 15 epochs fit; measured: docs/SPARSITY.md
    return SLNConfig(n_neurons=512, active_frac=0.03, density_in=0.13, density_rec=0.13, epochs=15)


@register
def sln_small_s14() -> SLNConfig:
    # sln-small-s13 measured 98.36 % int8 (10,000 images) in a 232,660 B firmware (flash target 256 kB):
    # the remaining flash buys 14 % of both matrices (+12.6 kB) and 5 more epochs. Measured 2026-12-02:
    # 98.54 % int8 (10,000 images), 247,164 B flash, 21,056 B RAM, 0.776 uJ (docs/SPARSITY.md)
    return SLNConfig(n_neurons=512, active_frac=0.03, density_in=0.14, density_rec=0.14, epochs=20)


@register
def sln_small_s14_2step() -> SLNConfig:
    # issue 9's step-count lever: half of sln-small-s14's int8 bill is dense per-neuron work done once
    # per cell step (requantising 2N accumulators, LayerNorm, gate, update, top-k, re-reading the int32
    # vectors), so 14 image rows per step (input_size 28 * 14 = 392, 2 steps instead of 4) halves it;
    # W_in grows to 2N x 392 (twice the nonzeros at the same density), the reads per input event do not.
    # Measured 2026-12-02: 98.72 % int8 (10,000 images), 0.546 uJ (4.9x below vit-s), but a 304,204 B
    # firmware (48 kB over 256 kB): hence sln-small-s14-2step-in07 (docs/SPARSITY.md)
    return SLNConfig(input_size=392, n_neurons=512, active_frac=0.03, density_in=0.14, density_rec=0.14, epochs=20)


@register
def sln_small_s14_2step_in07() -> SLNConfig:
    # sln-small-s14-2step with W_in at 7 %: the same W_in nonzeros as sln-small-s14 (2N x 392 x 0.07 =
    # 2N x 196 x 0.14), so the flash of the 247 kB sln-small-s14 firmware, and half the W_in reads per
    # input event (the largest weight term once the steps are halved). Measured 2026-12-02: 98.59 % int8
    # (10,000 images), 0.374 uJ (7.2x below vit-s), 248,020 B flash, 21,056 B RAM, 359 k instructions
    # (docs/SPARSITY.md)
    return SLNConfig(input_size=392, n_neurons=512, active_frac=0.03, density_in=0.07, density_rec=0.14, epochs=20)


@register
def sln_small_dense() -> SLNConfig:
    # the same network as sln-small with every neuron firing: the sparsity reference
    return SLNConfig(n_neurons=512, active_frac=1.0, boost_beta=0.0)



# --- time series (UCR/UEA); input_size / n_classes are set from the dataset by the trainer -----
# The default time-series recipe (issue 14): one setting for every set, no per-dataset tuning. Chosen with
# 60-s single-seed trials on GunPoint / ItalyPowerDemand / BasicMotions (2 Dec 2026, the trial table in
# docs/SEQUENCES.md); what each field does is documented on SLNConfig.
#   n_neurons 512, k = 15 (2.9 % active): in the same 60 s, N = 256, k = 7 reached ItalyPowerDemand train
#     loss 0.056 / GunPoint 86.7 %, N = 512, k = 15 0.052 / 91.3 % (the dense N = 256 net: 0.034 on IPD)
#   readout mean_last: + the last liquid state (in every trial after the first; not compared in isolation)
#   lambda_init [0.01, 1]: time constants of 1 to 100 steps, the range of the (patched) series
#   max_series_steps 64: long series in patches of ceil(T/64) samples per step, so ACSF1 (1460 steps) costs
#     what a 64-step set costs; GunPoint (150 -> 50 steps of 3) trained 45 epochs in 60 s instead of 24
#   lr 1e-2: every trial after the first two used it (4e-3 before; not compared in isolation)
#   train_drop 0.6: trained on randomly thinned sequences with the true dt (regular-only training reached
#     95 % on BasicMotions and lost 5-13 points when steps were dropped)
#   st_grad 0 and k_anneal 0 (off): both made fitting worse in the trials (straight-through g = 1:
#     ItalyPowerDemand train loss 0.56 vs 0.06; annealing k from N over half the run: GunPoint 68.7 % vs
#     89.3 %, train loss 0.58 vs 0.18); input_levels 0: the level code did not help (GunPoint 76.7 vs 82.7 %)
#   epochs 100 (batch 16): the trials' budgets ended at 40-230 epochs without a full fit of GunPoint
#   series_norm "series" (2026-12-02, seed 0, 340 steps = 10 epochs, 1 thread): PLAID's currents span five
#     orders of magnitude, after the global z-score half its training series had std < 0.004 (flat inputs);
#     z-scoring each series and passing its mean / log-scale as 2 extra channels took PLAID's training loss
#     from 1.60 to 0.23 and test from 37.1 to 74.7 %; on the short sets at the grid's epoch counts it did not
#     hurt (GunPoint 88.0 %, BasicMotions 100 %, JapaneseVowels 98.1 %, ItalyPowerDemand 90.0 %, all train
#     loss <= 0.19; the old grid's seed 0: 91.3, 100, 98.4, 90.7 %)
#   min_steps 1500: the already z-normalised long sets were short of optimizer steps, not of capacity or
#     gradient: ArrowHead (36 series = 3 batches) reached train loss 0.38 after 150 steps, 0.18 after 600;
#     a dense population (0.69), train_drop 0 (0.35), lr 3e-3 (0.63) or 3e-2 (0.55), mean-only readout
#     (0.62), lambda in [0.1, 2] (0.64), a level code (1.00) or finer patches (128 steps: 0.55) did not
#     help at 150 steps; the 90-s grid had given it 121-217 steps. 100 epochs = 300 steps for ArrowHead,
#     so small sets now train min_steps / batches epochs (ArrowHead 500, UnitTest 750); sets of >= 240
#     series keep 100 epochs. max_series_steps stays 64: 32 was no faster and no better on OSULeaf (195
#     steps: train loss 0.49 vs 0.46, test 58.3 % both) and 5 points lower on ArrowHead (600 steps)
#   boost_beta 0 (no homeostasis; 2026-12-03, seed 0, the recipe's 1500 steps, 1 thread): the boost kept
#     moving which neurons win while the cosine took the lr to 0, and the long sets did not fit: ArrowHead
#     training-split loss 0.084 -> 0.003 (test 63.4 -> 73.1 %), OSULeaf 0.040 -> 0.016 (66.9 -> 73.1 %),
#     ACSF1 0.145 -> 0.049 (76.0 -> 72.0 %); k-WTA still keeps k = 15 of 512 (2.9 %) active
#     (docs/SEQUENCES.md, "Homeostasis off")
def _ts_recipe(**kw: Any) -> SLNConfig:
    base: dict[str, Any] = dict(input_size=6, n_classes=4, n_neurons=512, active_frac=0.03, lr=1e-2,
                                batch_size=16, epochs=100, train_drop=0.6, readout="mean_last",
                                lambda_init_min=0.01, lambda_init_max=1.0, max_series_steps=64,
                                series_norm="series", min_steps=1500, boost_beta=0.0)
    return SLNConfig(**{**base, **kw})


@register
def sln_ts_small() -> SLNConfig:
    return _ts_recipe()


@register
def sln_ts_dense() -> SLNConfig:
    # the same population with every neuron firing: what sparsity costs on time series
    return _ts_recipe(active_frac=1.0)


# --- character language models; input_size / n_classes are set to the vocabulary size (84) ---
@register
def sln_lm_small() -> SLNConfig:
    # 3 % active (k = 15 of 512): the project's named configs fire 1-3 % of a population
    return SLNConfig(task="lm", input_size=84, n_classes=84, n_neurons=512, active_frac=0.03, lr=1e-2, batch_size=32,
                     epochs=1, time_budget_s=300.0)


@register
def sln_lm_tiny() -> SLNConfig:
    return SLNConfig(task="lm", input_size=84, n_classes=84, n_neurons=200, active_frac=0.03, lr=2e-2, batch_size=8,
                     epochs=1, time_budget_s=60.0)


# --- the domain / URL detector (sln/security/detect.py, docs/SECURITY_APPS.md) --------------------
@register
def sln_domains_small() -> SLNConfig:
    # input_size 61: one-hot characters over sln.security.domains.VOCAB (59 symbols + pad + other), one
    #   character per step; n_classes 2: benign / malicious (the score is logit[1] - logit[0])
    # N = 256, k = 7 (3 %): the project's sparse range; at 1 thread a 10-minute budget covers ~6 epochs of
    #   the 105 k training hosts (measured ~0.13 s per batch of 128 x 30 steps)
    # batch 128 and lr 4e-3: the image recipe (docs/DESIGN.md); augment_shift 0: images only
    # time_budget_s 600: what a 2-core machine shared with other jobs affords (equal for every view)
    return SLNConfig(input_size=61, n_classes=2, n_neurons=256, active_frac=0.03, lr=4e-3, batch_size=128,
                     epochs=20, augment_shift=0, time_budget_s=600.0)


@register
def sln_domains_tiny() -> SLNConfig:
    # the deployable detector (int8 .sln, SLN_KIND_TOKEN_CLASSIFIER, docs/SECURITY_APPS.md): N = 128 so the
    #   int8 file fits 64 kB of flash (W_rec 128 x 256 = 32 kB, W_in 61 x 256 = 15.6 kB, ~7 kB of int32
    #   vectors); k = 5 (3.9 %), above the project's 3 % rule (an exception in tests/test_model.py): measured
    #   2026-12-02 with the same command (train.py --time-budget-s 420, 1 thread, seed 0, load 0.9-2.4),
    #   k = 3 (active_frac 0.025, 2.3 %) reached grouped-test ROC-AUC 0.8969 float / 0.8981 int8 in 14.0
    #   epochs, k = 5 0.9223 float / 0.9215 int8 in 13.6 epochs (docs/SECURITY_APPS.md part 3)
    # the rest is sln-domains-small's recipe; time_budget_s 420: one run on the shared 2-core machine
    return SLNConfig(input_size=61, n_classes=2, n_neurons=128, active_frac=0.04, lr=4e-3, batch_size=128,
                     epochs=20, augment_shift=0, time_budget_s=420.0)


# --- the packet intrusion detectors (sln/security/ids.py, docs/SECURITY_IDS.md) ---------------------
@register
def sln_ids_small() -> SLNConfig:
    # task "events": one packet per step, a readout at every step; input_size 58: the packet features of
    #   sln.security.packets; n_classes 58: the readout reconstructs them (unsupervised, benign-only
    #   training; the score is the reconstruction RMSE)
    # N = 128, k = 16 (12.5 %), above the project's usual 1-3 %: measured on the small capture (250 steps,
    #   lr 1e-2, 2026-12-01) k = 4 gave per-packet ROC-AUC 0.978 and k = 16 0.997 (a per-packet readout of
    #   4 winners is too narrow a code for 58 features); k adds only 2N k + k C MACs per packet, the
    #   input's ~40 nonzero features x 2N dominate (docs/SECURITY_IDS.md). Within the 1-3 % rule, N = 512,
    #   k = 15 (`python -m sln.security.ids_bench --steps 250`) gave 0.991 at 50x the estimated energy
    #   (23.3 uJ vs 0.47 uJ per packet) and held-out slow_http fell to 0.84 for the supervised twin
    # lr 1e-2: what the k = 16 run used; at k = 4 the lr did not matter (0.977 at 4e-3, 0.978 at 1e-2)
    # batch 32 windows of 64 packets: the small capture's benign prefix holds ~3,600 training packets
    # epochs 100: ~3 batches per epoch on that prefix; augment_shift 0: images only
    return SLNConfig(task="events", input_size=58, n_classes=58, n_neurons=128, active_frac=0.125, lr=1e-2,
                     batch_size=32, epochs=100, augment_shift=0)


@register
def sln_ids_s10() -> SLNConfig:
    # the cheap packet detector: sln-ids-small's recipe at N = 64, k = 8 (12.5 %, as above) with both
    #   matrices pruned to 10 % density (gradual magnitude pruning, sln/prune.py); 81 % of the dense
    #   model's estimated energy was weight reads (~41 nonzero features x a 2N row each). Measured on the
    #   small capture, 2026-12-02 (docs/SECURITY_IDS.md "Part 3"): per-packet ROC-AUC 0.9962 (dense 0.9968),
    #   28.6 nJ per packet (dense 463 nJ, KitNET 23.1 nJ), 84-107k packets/s in `sln detect-net`
    return dataclasses.replace(sln_ids_small(), n_neurons=64, density_in=0.1, density_rec=0.1)


@register
def sln_ids_sup() -> SLNConfig:
    # the supervised packet detector: the same network with a 2-class readout (score logit[1] - logit[0]),
    #   trained on benign + labelled attack packets (leave-one-type-out in sln.security.ids_bench)
    #   (held-out slow_http, 250 steps: k = 16 ROC-AUC 0.996, k = 4 0.992)
    # epochs 20: the supervised training stream (~24 k packets on the small capture) is ~7x the prefix
    return SLNConfig(task="events", input_size=58, n_classes=2, n_neurons=128, active_frac=0.125, lr=1e-2,
                     batch_size=32, epochs=20, augment_shift=0)
