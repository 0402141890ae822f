r"""The sparse liquid cell: one step of a liquid population with k-winners-take-all firing.

Equations (per step, population of N neurons, input x_t in R^D, elapsed time dt > 0):

    a_t      = W_in x_t + W_rec y_{t-1} + b              a_t in R^{2N}, split into (u_t, v_t)
    c_t      = ReLU(LayerNorm(u_t))                       candidate (target) state, >= 0
    lambda_t = softplus(v_t) + lambda_min                 input-dependent decay rate = 1 / tau_t
    alpha_t  = exp(-lambda_t * dt)                        retention over the elapsed time
    h_t      = alpha_t * h_{t-1} + (1 - alpha_t) * c_t    liquid state
    W_t      = top-k_i ( boost_i * h_t,i )                k winners (ties: lowest index)
    y_t      = h_t * 1[i in W_t]                          sparse output, <= k nonzeros

The state update is the exact solution over dt of  dh/dt = -lambda_t (h - c_t)  with the
input held constant during the interval: a neuron relaxes towards its candidate with an
input-dependent time constant tau_t = 1/lambda_t. This is the liquid time-constant idea
(Hasani et al., "Liquid Time-constant Networks", AAAI 2021) in the closed-form style of
CfC (Hasani et al., "Closed-form continuous-time neural networks", Nature Machine
Intelligence 2022); unlike CfC's sigma(-f t) gate, alpha -> 1 as dt -> 0, so a step of
zero length leaves the state unchanged and irregular sampling is handled by passing dt.

Why these choices (see docs/DESIGN.md): k-WTA picks the most excited neurons, which under
tanh sit in its saturated range and get no gradient; LayerNorm on the pre-activation plus
a ReLU candidate keeps winners in a linear range. Winners carry their value (no binary
spikes), which keeps backward stable.

Cost that follows activity: y_{t-1} has <= k nonzeros and image pixels are zero on the
background, so W_in x_t + W_rec y_{t-1} only needs the columns of W_in/W_rec of nonzero
inputs and of the winners (`gather_preactivation` proves this is exact). What remains
dense is elementwise work over N (LayerNorm, softplus, exp, the update, top-k).

Weight sparsity (sln/prune.py): a cell built with `masked=True` holds boolean buffers mask_in
(2N, D) and mask_rec (2N, N), saved in checkpoints; the weights outside them are held at exactly
+0.0 (`apply_masks`, after every optimizer step), so the plain matmuls above, the exporter and the
engine all see the sparse matrices without a second code path. A dense cell has no mask buffers,
so checkpoints written before masks existed still load.

Homeostasis (Ahmad & Scheinkman 2019, "How Can We Be So Dense?", relative form): each
neuron keeps a duty cycle d_i (EMA of how often it wins) and a boost
boost_i = exp(beta * (target - d_i) / target), target = k/N. Boost only affects which
neurons win; in eval mode it is frozen and stored in the checkpoint, so inference selects
exactly as training did.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

State = tuple[torch.Tensor, torch.Tensor]  # (h, y): liquid state and last sparse output, each (B, N)


class LiquidCell(nn.Module):
    def __init__(self, input_size: int, n_neurons: int, k: int, *, boost_beta: float = 1.0,
                 duty_momentum: float = 0.99, lambda_min: float = 0.01, ln_eps: float = 1e-5,
                 masked: bool = False, lambda_init: tuple[float, float] = (0.1, 2.0), st_grad: float = 0.0) -> None:
        super().__init__()
        if not 1 <= k <= n_neurons:
            raise ValueError(f"k must be in [1, n_neurons={n_neurons}], got {k}")
        self.input_size, self.n_neurons, self.k = input_size, n_neurons, k
        self.boost_beta, self.duty_momentum = boost_beta, duty_momentum
        self.lambda_min, self.ln_eps = lambda_min, ln_eps
        self.st_grad = st_grad
        self.k_train: int | None = None   # training-mode k while k annealing runs (None: k); eval always uses k
        N = n_neurons
        self.w_in = nn.Linear(input_size, 2 * N)             # (2N, D) + bias (2N)
        self.w_rec = nn.Linear(N, 2 * N, bias=False)          # (2N, N), reads only winners' columns
        self.ln = nn.LayerNorm(N, eps=ln_eps)
        with torch.no_grad():
            # recurrent std 1/sqrt(N): the trial found larger inits stall k-WTA training
            self.w_rec.weight.normal_(0.0, 1.0 / math.sqrt(N))
            # spread time constants: lambda log-uniform in lambda_init (default [0.1, 2]) at zero input
            lam = torch.exp(torch.empty(N).uniform_(math.log(lambda_init[0]), math.log(lambda_init[1])))
            self.w_in.bias[N:] = torch.log(torch.expm1(lam))  # softplus^-1
        # buffers, not Parameters: they are state, never trained (ncps's slip avoided)
        self.register_buffer("duty", torch.full((N,), k / N))
        self.register_buffer("boost", torch.ones(N))
        self.masked = masked
        if masked:   # all True until the pruning schedule first shrinks them
            self.register_buffer("mask_in", torch.ones(2 * N, input_size, dtype=torch.bool))
            self.register_buffer("mask_rec", torch.ones(2 * N, N, dtype=torch.bool))

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Set the weights outside the masks to exactly +0.0 (masked_fill: a multiply by 0 would
        leave -0.0 for negative weights). No-op for a dense cell."""
        if self.masked:
            self.w_in.weight.masked_fill_(~self.mask_in, 0.0)
            self.w_rec.weight.masked_fill_(~self.mask_rec, 0.0)

    def init_state(self, batch: int, device: torch.device | None = None) -> State:
        z = torch.zeros(batch, self.n_neurons, device=device)
        return z, z.clone()

    def update(self, a: torch.Tensor, h: torch.Tensor, dt: torch.Tensor | float) -> torch.Tensor:
        """Liquid update from the pre-activation a (B, 2N) and old state h (B, N) -> new h (B, N)."""
        N = self.n_neurons
        u, v = a[:, :N], a[:, N:]
        c = F.relu(self.ln(u))
        lam = F.softplus(v) + self.lambda_min
        if isinstance(dt, torch.Tensor) and dt.dim() == 1:
            dt = dt[:, None]
        alpha = torch.exp(-lam * dt)
        return alpha * h + (1.0 - alpha) * c

    def active_k(self) -> int:
        """The k of this step: k_train in training mode (k annealing), k in eval mode."""
        return self.k_train if self.training and self.k_train is not None else self.k

    def select(self, h: torch.Tensor) -> torch.Tensor:
        """k-WTA on boost*h -> boolean winner mask (B, N) with exactly k True per row (k_train in training)."""
        score = h * self.boost if self.boost_beta > 0 else h
        k = self.active_k()
        if k == self.n_neurons:
            return torch.ones_like(h, dtype=torch.bool)
        if torch.onnx.is_in_onnx_export():
            # ONNX has no stable sort; its TopK returns equal values lowest index first (the spec), the
            # same winners as the sort below (sln/onnx_export.py; its parity test checks them)
            idx = torch.topk(score, k, dim=1).indices
        else:
            # stable sort => ties resolved towards the lowest index, as the C runtime does
            idx = torch.sort(score, dim=1, descending=True, stable=True).indices[:, :k]
        mask = torch.zeros_like(h, dtype=torch.bool)
        return mask.scatter_(1, idx, True)

    def preactivation(self, x: torch.Tensor, y_prev: torch.Tensor) -> torch.Tensor:
        """a = W_in x + b + W_rec y_prev (B, 2N), in masked-dense form. x is (B, D) float, or token
        ids (B,) long: W_in onehot(id) + b is column id of W_in (+ b), a gather (the LM's input)."""
        if x.dtype in (torch.int64, torch.int32):
            return self.w_in.weight.t()[x] + self.w_in.bias + self.w_rec(y_prev)
        return self.w_in(x) + self.w_rec(y_prev)

    def step(self, x: torch.Tensor, state: State, dt: torch.Tensor | float = 1.0,
             observe: Callable[[torch.Tensor], None] | None = None) -> tuple[torch.Tensor, State, torch.Tensor]:
        """x (B, D) or ids (B,) -> y (B, N), new state, winner mask (B, N). observe(a) sees the
        pre-activation (B, 2N) (int8 calibration records its range)."""
        h, y_prev = state
        a = self.preactivation(x, y_prev)
        if observe is not None:
            observe(a)
        h = self.update(a, h, dt)
        mask = self.select(h.detach())
        y = h * mask
        if self.st_grad > 0 and self.training and torch.is_grad_enabled():
            y = y + straight_through(h, mask, self.st_grad)
        return y, (h, y), mask

    def forward(self, x: torch.Tensor, state: State | None = None, dt: torch.Tensor | float = 1.0
                ) -> tuple[torch.Tensor, State]:
        if state is None:
            state = self.init_state(x.shape[0], x.device)
        y, state, _ = self.step(x, state, dt)
        return y, state

    def gather_preactivation(self, x: torch.Tensor, y_prev: torch.Tensor) -> torch.Tensor:
        """Event form of W_in x + W_rec y + b for one sample (x (D,), y_prev (N,)) -> (2N,).

        Reads only the weight columns of nonzero inputs and of the previous winners.
        """
        xi = torch.nonzero(x, as_tuple=True)[0]
        yi = torch.nonzero(y_prev, as_tuple=True)[0]
        return (self.w_in.bias + self.w_in.weight[:, xi] @ x[xi]
                + self.w_rec.weight[:, yi] @ y_prev[yi])

    @torch.no_grad()
    def update_boost(self, win_rate: torch.Tensor) -> None:
        """win_rate (N,): share of (sample, step) pairs each neuron won in this batch."""
        if self.boost_beta <= 0:
            return
        m = self.duty_momentum
        self.duty.mul_(m).add_((1 - m) * win_rate)
        target = self.active_k() / self.n_neurons
        self.boost.copy_(torch.exp(self.boost_beta * (target - self.duty) / target))


def straight_through(h: torch.Tensor, mask: torch.Tensor, scale: float) -> torch.Tensor:
    """A term that is exactly +0.0 in the forward pass and passes scale * dL/dy to the non-winners' h in
    backward: y = h * mask + straight_through(h, mask, g) has the forward value of h * mask and the
    gradient dy/dh = 1 for winners, g for losers (h - h.detach() is exactly 0 for finite h)."""
    return (h - h.detach()) * (~mask).to(h.dtype) * scale


def annealed_k(progress: float, n: int, k: int, anneal: float) -> int:
    """k annealing: k falls geometrically from n (dense) at progress 0 to k at progress `anneal` (share of
    training), then stays k. anneal 0 = always k. Geometric: equal ratios per unit of progress, so the
    sparse end (where a change of a few neurons matters) gets as much time as the dense end."""
    if anneal <= 0 or progress >= anneal:
        return k
    p = max(0.0, progress) / anneal
    return max(k, min(n, int(round(n ** (1.0 - p) * k ** p))))
