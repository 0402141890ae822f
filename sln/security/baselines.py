"""The trusted baselines a network engineer would otherwise use, on the same splits as the SLN later.

Each baseline has `fit(texts, y)`, `score(texts) -> (N,) float` (higher = more malicious) and
`nbytes()` (what it takes to ship it):
  * `Blocklist`: exact lookup of the training malicious texts; it catches only what it has seen, so
    under a grouped split its test TPR is ~0 by construction (that is the point of showing it).
  * `TfidfLogReg`: character 1-5-gram TF-IDF + logistic regression (scikit-learn).
  * `LexicalGBT`: histogram gradient-boosted trees on hand-made lexical features (scikit-learn).
  * `CharCNN`: a small URLNet-like character CNN (PyTorch): embedding -> parallel 1-D convolutions
    of widths 3/5/7 -> max over time -> MLP.
scikit-learn is imported lazily, so the package works without it until a baseline needs it.
"""
from __future__ import annotations

import math
import pickle
import re
from collections import Counter

import numpy as np
import torch
from torch import nn

from .domains import VOCAB_SIZE, encode
from .psl import PublicSuffixList


def _sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError as e:
        raise ImportError("the TF-IDF and gradient-boosting baselines need scikit-learn: "
                          "pip install scikit-learn  (or: pip install -e .[security])") from e


class Blocklist:
    name = "blocklist (exact)"

    def fit(self, texts: list[str], y: np.ndarray) -> Blocklist:
        self.bad = {t for t, l in zip(texts, y) if l == 1}
        return self

    def score(self, texts: list[str]) -> np.ndarray:
        return np.fromiter((t in self.bad for t in texts), dtype=np.float64, count=len(texts))

    def nbytes(self) -> int:
        return sum(len(t) + 1 for t in self.bad)       # as a newline-separated file


class TfidfLogReg:
    name = "tfidf 1-5 + logreg"

    def __init__(self, c: float = 4.0) -> None:
        self.c = c

    def fit(self, texts: list[str], y: np.ndarray) -> TfidfLogReg:
        _sklearn()
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        # min_df=2 drops n-grams seen once (mostly random strings), keeping the model ~10x smaller
        self.vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 5), min_df=2, sublinear_tf=True,
                                   dtype=np.float32)
        x = self.vec.fit_transform(texts)
        self.clf = LogisticRegression(C=self.c, solver="liblinear", class_weight="balanced", max_iter=1000)
        self.clf.fit(x, y)
        return self

    def score(self, texts: list[str]) -> np.ndarray:
        return self.clf.decision_function(self.vec.transform(texts)).astype(np.float64)

    def nbytes(self) -> int:
        return len(pickle.dumps((self.vec, self.clf), protocol=pickle.HIGHEST_PROTOCOL))


_VOWELS = set("aeiou")
_CONSONANTS = set("bcdfghjklmnpqrstvwxyz")
_FILE_EXT = re.compile(r"\.(exe|zip|rar|7z|apk|sh|bin|dll|msi|scr|jar|js|vbs|ps1|doc|docx|xls|pdf|arm\d*|mips|x86)$")
LEXICAL_NAMES = ["len", "labels", "max_label", "mean_label", "sld_len", "sub_depth", "entropy", "digit_ratio",
                 "vowel_ratio", "consonant_ratio", "hyphens", "underscores", "max_consonant_run", "max_digit_run",
                 "unique_ratio", "punycode", "path_len", "path_segments", "query", "file_ext", "tld"]


def _entropy(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values()) if n else 0.0


def _max_run(s: str, chars: set[str]) -> int:
    best = run = 0
    for c in s:
        run = run + 1 if c in chars else 0
        best = max(best, run)
    return best


def lexical_features(text: str, psl: PublicSuffixList) -> list[float]:
    """The numeric features of one host or host+path, in `LEXICAL_NAMES` order (the TLD last, as a string
    index is assigned by the model). Shapes: 20 floats + the TLD handled by `LexicalGBT`."""
    host, _, path = text.partition("/")
    labels = host.split(".")
    n_suffix = psl.suffix_len(labels[::-1])
    sld = labels[-n_suffix - 1] if len(labels) > n_suffix else ""
    letters = [c for c in host if c.isalpha()]
    n = max(len(host), 1)
    return [len(host), len(labels), max(map(len, labels)), sum(map(len, labels)) / len(labels), len(sld),
            max(len(labels) - n_suffix - 1, 0), _entropy(host), sum(c.isdigit() for c in host) / n,
            sum(c in _VOWELS for c in letters) / n, sum(c in _CONSONANTS for c in letters) / n,
            host.count("-"), host.count("_"), _max_run(host, _CONSONANTS), _max_run(host, set("0123456789")),
            len(set(host)) / n, float("xn--" in host), len(path), path.count("/") + bool(path),
            float("?" in path), float(bool(_FILE_EXT.search(path.split("?", 1)[0])))]


class LexicalGBT:
    name = "lexical + GBT"

    def __init__(self, psl: PublicSuffixList, max_tlds: int = 200) -> None:
        self.psl, self.max_tlds = psl, max_tlds

    def _x(self, texts: list[str]) -> np.ndarray:
        rows = [lexical_features(t, self.psl) for t in texts]
        tld = [self.tlds.get(t.partition("/")[0].rsplit(".", 1)[-1], len(self.tlds)) for t in texts]
        return np.column_stack([np.asarray(rows, dtype=np.float64).reshape(len(texts), -1), tld])

    def fit(self, texts: list[str], y: np.ndarray) -> LexicalGBT:
        _sklearn()
        from sklearn.ensemble import HistGradientBoostingClassifier
        common = Counter(t.partition("/")[0].rsplit(".", 1)[-1] for t in texts).most_common(self.max_tlds)
        self.tlds = {t: i for i, (t, _) in enumerate(common)}          # others -> one "rare TLD" code
        x = self._x(texts)
        cat = np.zeros(x.shape[1], dtype=bool)
        cat[-1] = True
        self.clf = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.1, categorical_features=cat,
                                                  class_weight="balanced", random_state=0)
        self.clf.fit(x, y)
        return self

    def score(self, texts: list[str]) -> np.ndarray:
        return self.clf.decision_function(self._x(texts)).astype(np.float64)

    def nbytes(self) -> int:
        return len(pickle.dumps((self.tlds, self.clf), protocol=pickle.HIGHEST_PROTOCOL))


class _CNN(nn.Module):
    """ids (B, T) -> logits (B,). Embedding 32, three convolutions of 64 filters (widths 3, 5, 7)."""

    def __init__(self, emb: int = 32, filters: int = 64, hidden: int = 64) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB_SIZE, emb, padding_idx=0)
        self.convs = nn.ModuleList([nn.Conv1d(emb, filters, k, padding=k // 2) for k in (3, 5, 7)])
        self.head = nn.Sequential(nn.Linear(3 * filters, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, 1))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(ids).transpose(1, 2)                          # (B, emb, T)
        mask = (ids == 0).unsqueeze(1)                              # padding never wins the max
        h = [torch.relu(c(x)).masked_fill(mask, 0.0).amax(dim=2) for c in self.convs]  # 3 x (B, filters)
        return self.head(torch.cat(h, dim=1)).squeeze(1)


class CharCNN:
    name = "char-CNN"

    def __init__(self, max_len: int = 64, tail: bool = True, epochs: int = 4, batch: int = 256,
                 lr: float = 3e-3, seed: int = 0, device: str = "cpu") -> None:
        self.max_len, self.tail, self.epochs, self.batch, self.lr, self.seed = max_len, tail, epochs, batch, lr, seed
        self.device = device      # where fit trains (auto|cpu|cuda); scored and timed on the CPU

    def fit(self, texts: list[str], y: np.ndarray) -> CharCNN:
        from ..device import resolve_device
        dev = resolve_device(self.device)
        torch.manual_seed(self.seed)
        g = torch.Generator().manual_seed(self.seed)
        ids = torch.from_numpy(encode(texts, self.max_len, self.tail))
        yt = torch.as_tensor(np.asarray(y), dtype=torch.float32)
        self.net = _CNN().to(dev)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        # the classes are ~1:8; weighting the positives keeps the loss from ignoring them
        pos_weight = torch.tensor(float((yt == 0).sum() / max((yt == 1).sum(), 1)), device=dev)
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        ids, yt = ids.to(dev), yt.to(dev)          # the training set on the device once
        self.net.train()
        for _ in range(self.epochs):   # the permutation drawn on the CPU generator, copied once per epoch
            for b in torch.randperm(len(ids), generator=g).to(dev).split(self.batch):
                opt.zero_grad()
                loss_fn(self.net(ids[b]), yt[b]).backward()
                opt.step()
        self.net.cpu().eval()
        return self

    @torch.no_grad()
    def score(self, texts: list[str]) -> np.ndarray:
        ids = torch.from_numpy(encode(texts, self.max_len, self.tail))
        return torch.cat([self.net(b) for b in ids.split(4096)]).double().numpy() if len(ids) else np.zeros(0)

    def nbytes(self) -> int:
        return sum(p.numel() * 4 for p in self.net.parameters())    # float32 weights
