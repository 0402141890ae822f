"""KitNET (Mirsky, Doitshman, Elovici, Shabtai, "Kitsune: An Ensemble of Autoencoders for Online Network
Intrusion Detection", NDSS 2018), re-implemented here from the paper's description in numpy.

    kn = KitNET(max_size=10).fit(x_benign)          # x (N, D) features, benign only, in stream order
    s = kn.score(x)                                  # (N,) RMSE of the output autoencoder, higher = worse

The paper's pipeline, on the same per-packet features every detector here gets (sln.security.packets):
  1. Feature mapper (the first `fm_share` of the training packets, the paper's FM grace period): the
     correlation distance d(i, j) = 1 - (u.v)/(|u||v|) of the centred feature columns u, v (the
     paper's definition); agglomerative clustering of the features by it, the
     dendrogram split top-down until every cluster has at most `max_size` (m) features. Single linkage
     (the paper's hierarchical clustering) cut top-down is the same as deleting the longest edges of a
     minimum spanning tree of the distance graph, which is how it is computed here (Prim, O(D^2)).
  2. Ensemble layer: one autoencoder per cluster, v visible -> h = ceil(beta v) hidden (beta = 0.75)
     -> v, sigmoid units, tied weights; each input is min-max normalised to [0, 1] with the minimum and
     maximum seen during training; its output is the RMSE of the reconstruction.
  3. Output layer: one autoencoder of the same kind over the vector of ensemble RMSEs (also min-max
     normalised); its RMSE is the anomaly score.
  Training is online, one packet at a time, SGD with learning rate 0.1 (the paper's value), on the
  packets after the FM grace period (the AD grace period), benign only. `epochs` > 1 repeats the
  AD pass (the paper makes one; the small capture's benign prefix is ~3,400 packets, so both are run).
Counts for the energy estimate (`ops_per_packet`) follow the same conventions as the SLN's
(sln/energy.py, docs/ENERGY.md): a MAC per weight use, sigmoid = exp + reciprocal (2 nonlinear) + 1 add,
sqrt 1 nonlinear; tied weights are read twice (encode, decode).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

LR = 0.1
BETA = 0.75


def _sigmoid(a: np.ndarray) -> np.ndarray:
    # clipped: an input far outside the training range would overflow exp (the value is 0 or 1 either way)
    return 1.0 / (1.0 + np.exp(-np.clip(a, -60.0, 60.0)))


def correlation_distance(x: np.ndarray) -> np.ndarray:
    """(N, D) -> (D, D) 1 - (u.v)/(|u||v|) of the centred columns; a constant column is at distance 1
    from every other (it carries no correlation to group by)."""
    c = x.astype(np.float64) - x.mean(0, dtype=np.float64)
    n = np.sqrt((c * c).sum(0))
    ok = n > 1e-12
    g = c.T @ c
    with np.errstate(divide="ignore", invalid="ignore"):
        d = 1.0 - g / np.outer(np.where(ok, n, 1.0), np.where(ok, n, 1.0))
    d[~ok, :] = 1.0
    d[:, ~ok] = 1.0
    np.fill_diagonal(d, 0.0)
    return np.clip(d, 0.0, 2.0)


def cluster_features(dist: np.ndarray, max_size: int) -> list[list[int]]:
    """Single-linkage clusters of at most max_size features: build the minimum spanning tree, then
    split any component larger than max_size at its longest tree edge, recursively (top of the
    dendrogram first). Ties break towards the lowest index, so the result is deterministic."""
    D = len(dist)
    in_tree, best, parent = np.zeros(D, bool), np.full(D, np.inf), np.full(D, -1)
    best[0] = 0.0
    edges: list[tuple[float, int, int]] = []
    for _ in range(D):
        i = int(np.argmin(np.where(in_tree, np.inf, best)))
        in_tree[i] = True
        if parent[i] >= 0:
            edges.append((float(best[i]), int(parent[i]), i))
        upd = ~in_tree & (dist[i] < best)
        best[upd], parent[upd] = dist[i][upd], i

    def split(nodes: list[int], es: list[tuple[float, int, int]]) -> list[list[int]]:
        if len(nodes) <= max_size:
            return [sorted(nodes)]
        cut = max(range(len(es)), key=lambda j: (es[j][0], -j))
        rest = es[:cut] + es[cut + 1:]
        adj: dict[int, list[int]] = {n: [] for n in nodes}
        for _, a, b in rest:
            adj[a].append(b)
            adj[b].append(a)
        seen, stack = {es[cut][1]}, [es[cut][1]]
        while stack:
            for nb in adj[stack.pop()]:
                if nb not in seen:
                    seen.add(nb)
                    stack.append(nb)
        left = [n for n in nodes if n in seen]
        right = [n for n in nodes if n not in seen]
        return (split(left, [e for e in rest if e[1] in seen])
                + split(right, [e for e in rest if e[1] not in seen]))

    return sorted(split(list(range(D)), edges), key=lambda c: c[0])


@dataclass
class AE:
    """One tied-weight sigmoid autoencoder v -> h -> v with min-max input normalisation."""
    v: int
    seed: int
    h: int = 0
    W: np.ndarray = field(init=False)
    hb: np.ndarray = field(init=False)
    vb: np.ndarray = field(init=False)
    lo: np.ndarray = field(init=False)
    hi: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.h = self.h or max(1, math.ceil(BETA * self.v))
        a = 1.0 / self.v
        self.W = np.random.default_rng(self.seed).uniform(-a, a, (self.v, self.h))
        self.hb, self.vb = np.zeros(self.h), np.zeros(self.v)
        self.lo, self.hi = np.full(self.v, np.inf), np.full(self.v, -np.inf)

    def _norm(self, x: np.ndarray) -> np.ndarray:
        return (x - self.lo) / (self.hi - self.lo + 1e-16)

    def train_one(self, x: np.ndarray) -> float:
        """One SGD step on one sample (v,), after widening the min-max range by it -> its RMSE."""
        np.minimum(self.lo, x, out=self.lo)
        np.maximum(self.hi, x, out=self.hi)
        xn = self._norm(x)
        y = _sigmoid(xn @ self.W + self.hb)
        z = _sigmoid(y @ self.W.T + self.vb)
        e_v = xn - z                                    # cross-entropy gradient at sigmoid outputs
        e_h = (e_v @ self.W) * y * (1.0 - y)
        self.W += LR * (np.outer(xn, e_h) + np.outer(e_v, y))
        self.hb += LR * e_h
        self.vb += LR * e_v
        return float(np.sqrt(np.mean(e_v * e_v)))

    def rmse(self, x: np.ndarray) -> np.ndarray:
        """(N, v) -> (N,) reconstruction RMSE with the trained weights (no update)."""
        xn = self._norm(x)
        y = _sigmoid(xn @ self.W + self.hb)
        z = _sigmoid(y @ self.W.T + self.vb)
        return np.sqrt(np.mean((xn - z) ** 2, axis=1))


@dataclass
class KitNET:
    max_size: int = 10
    fm_share: float = 0.2
    epochs: int = 1
    seed: int = 0
    clusters: list[list[int]] = field(default_factory=list)
    ensemble: list[AE] = field(default_factory=list)
    output: AE | None = None

    @property
    def name(self) -> str:
        return f"KitNET (m={self.max_size}, {self.epochs} pass{'es' if self.epochs > 1 else ''})"

    def fit(self, x: np.ndarray) -> KitNET:
        """x (N, D) benign training packets in stream order: FM grace on the first fm_share, then
        online training of the ensemble and output layers on the rest (epochs passes)."""
        x = np.asarray(x, np.float64)
        n_fm = max(2, int(self.fm_share * len(x)))
        if len(x) - n_fm < 1:
            raise ValueError("KitNET needs more training packets than its feature-mapping grace period")
        self.clusters = cluster_features(correlation_distance(x[:n_fm]), self.max_size)
        self.ensemble = [AE(len(c), self.seed + i) for i, c in enumerate(self.clusters)]
        self.output = AE(len(self.clusters), self.seed + 10_000)
        rng = np.random.default_rng(self.seed)
        for ep in range(self.epochs):
            # the paper's single online pass is in stream order; later passes shuffle (plain SGD epochs)
            order = np.arange(n_fm, len(x)) if ep == 0 else rng.permutation(np.arange(n_fm, len(x)))
            for i in order:
                r = np.array([ae.train_one(x[i, c]) for ae, c in zip(self.ensemble, self.clusters)])
                self.output.train_one(r)
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        if self.output is None:
            raise ValueError("KitNET is not trained; call fit() first")
        x = np.asarray(x, np.float64)
        r = np.stack([ae.rmse(x[:, c]) for ae, c in zip(self.ensemble, self.clusters)], 1)
        return self.output.rmse(r)

    def num_params(self) -> int:
        return sum(ae.W.size + ae.hb.size + ae.vb.size + 2 * ae.v for ae in [*self.ensemble, self.output])

    def footprints(self) -> dict[str, float]:
        """fp32 bytes: weight matrices, per-unit vectors (biases, min, 1/range), activation working set."""
        aes = [*self.ensemble, self.output]
        return {"matrix": 4.0 * sum(ae.W.size for ae in aes),
                "param": 4.0 * sum(ae.h + 3 * ae.v for ae in aes),
                "act": 4.0 * (sum(ae.v for ae in self.ensemble) + 2 * max(ae.v + ae.h for ae in aes)
                              + len(self.ensemble))}

    def ops_per_packet(self) -> dict[str, float]:
        """Operations of one score() per packet, keys of sln.energy.estimate_pj."""
        ops = {"macs": 0.0, "adds": 0.0, "muls": 0.0, "nonlin": 0.0, "weight_bytes": 0.0, "param_bytes": 0.0,
               "act_bytes": 0.0}
        for ae in [*self.ensemble, self.output]:
            v, h = ae.v, ae.h
            ops["adds"] += v + h + v + (h + v) + v        # normalise (x - lo), biases, sigmoid 1 + e, error
            ops["muls"] += v + 1                          # normalise (* 1/range), mean
            ops["macs"] += 2 * v * h + v                  # encode, decode (tied W), sum of squares
            ops["nonlin"] += 2 * (h + v) + 1              # sigmoid: exp + reciprocal; sqrt
            ops["weight_bytes"] += 2 * 4 * v * h          # W read for encode and again (transposed) for decode
            ops["param_bytes"] += 4 * (h + 3 * v)         # hb, vb, lo, 1/range
            ops["act_bytes"] += 4 * (v + 2 * h + 2 * v + v + 1)   # x in, y out/in, z out/in, error, rmse out
        return ops
