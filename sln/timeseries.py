r"""UCR/UEA time-series classification sets: a `.ts` reader, offline fetch, irregular sampling.

Data source. The sets ship as text files inside PyPI's `sktime==1.2.0` wheel under
`sktime/datasets/data/<Name>/<Name>_{TRAIN,TEST}.ts`. The wheel is fetched and
verified by `sln.fetch` (sktime is never installed or imported), only the needed `.ts`
files are extracted, each is checked against its SHA-256 below and cached under
`$SLN_DATA/ucr/<Name>/` (default `~/.cache/sln`). Already-cached files are re-verified on
every load; a missing, altered or malformed file raises `DataError` / `TSFormatError`
saying what to do.

The `.ts` format (sktime/UEA) as read here:
    % or # lines          comments
    @problemName NAME     header lines, one per key, before @data
    @timeStamps false     (true -- "(t,v)" tuples -- is rejected with a clear error)
    @univariate, @dimensions D, @equalLength, @seriesLength T, @missing
    @classLabel true A B  the class names; a label must be one of them
    @targetLabel true     a regression file: refused ("regression is not supported")
    @data
    v,v,v,...:v,v,...:LABEL   one case per line: D dimensions separated by ':', values by
                              ',', the class label last; '?' is a missing value (NaN)

Normalisation (`normalise`): per-channel z-score with statistics of the *training* split
(mean/std over every training series and time step of that channel), applied to both
splits. Series are deliberately not z-normalised one by one: in BasicMotions the amplitude
of the signal is what tells resting from running. The univariate UCR sets (GunPoint,
ItalyPowerDemand) are already z-normalised per series by the archive, so for them the
per-channel step only rescales slightly. Missing values become 0 after normalisation
(the channel mean). The time-series recipe (`series_norm = "series"`, `code_inputs`) then z-scores every
series on its own as well and passes its per-channel mean and log-scale as extra inputs, so the amplitude
is kept as an input instead of as the scale of the series. Variable-length sets (JapaneseVowels, 7-29
steps) are right-padded with zeros and carry their true lengths; models average only over valid steps.

Irregular sampling (`drop_steps`): keep a random subset of the steps of each series (the
first step always kept, order kept) and report for every kept step the true elapsed time
since the previous kept one, in units of the original sampling interval (the first kept
step is 1 after the zero initial state, as in a regular sequence). The liquid cell takes
this as its dt; "without dt" means passing 1.0 for every kept step.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .fetch import Archive, DataError, default_data_dir, fetch_members, sha256_file

SKTIME = Archive("sktime", "sktime-1.2.0-py3-none-any.whl",
                 "dbffc6731d2d683b668dceb5e2bbc5804bebc8446b4c580803a281684d90e4ae")
WHEEL_PREFIX = "sktime/datasets/data/"
FLOAT32_MAX = float(np.finfo(np.float32).max)

# --dataset name -> (archive name, {split: sha256 of the .ts file as shipped in sktime 1.2.0})
DATASETS: dict[str, tuple[str, dict[str, str]]] = {
    "basicmotions": ("BasicMotions", {
        "TRAIN": "8dc43cc6306cb679c888c01e26f91772ac4441a916da43bac8b79734a538b9d6",
        "TEST": "79213102bc6fca1a398ad98ce1185dff0208fa3d1465e687f48288946b0ff8dc"}),
    "japanesevowels": ("JapaneseVowels", {
        "TRAIN": "68a430eabd919cc77f40b1f5f3bc0dcafacc1486bca9260785aeb7d262cc78cd",
        "TEST": "b3d41d6a0ca3bcad3afb9ca7d4365382aa51341e2e58bae2a574babdda5b9462"}),
    "gunpoint": ("GunPoint", {
        "TRAIN": "f842401779fd9800d247d8b33121a1a4643710a19b24917dbdd9a060ca8630d5",
        "TEST": "79332750788a6227b325b96bd0d70130c8eb707b9731f8d7dec62b7a7d36017e"}),
    "italypowerdemand": ("ItalyPowerDemand", {
        "TRAIN": "341269cb7e6cef96846b30e774580beec79addb93848ba360145219115a74b7c",
        "TEST": "26122451f87dd0387ef90b18bc8a86c041371b8a1c068004922b939971247144"}),
    # the rest of the wheel's classification sets (Covid3Month and Tecator are regression: refused)
    "acsf1": ("ACSF1", {
        "TRAIN": "0646b90dc4843e02baed6b2ba345c5601a4991b6796565489cef1b2d92a7537b",
        "TEST": "93e8aaeb44a10af181d24a156e60da7021193cd990ca28f263fccf3b905bfebf"}),
    "arrowhead": ("ArrowHead", {
        "TRAIN": "a83c470aaf611a5f5284377cce27a5fc9f6292bc3d110257b0fd4905ced5ee72",
        "TEST": "5417dab42626d41df5e435bb22458c2df40dfad4bcd3b59559bbe72e20e84904"}),
    "osuleaf": ("OSULeaf", {
        "TRAIN": "86b9d6e860414ffd26cebc62fff84ffb37fa588ef3e5bf79e4094a437c36ddfc",
        "TEST": "6c549dd354f9e42d5985fa5fab75321ca9acefc7873457e71467fc8a31f107ce"}),
    "plaid": ("PLAID", {
        "TRAIN": "40deb3bc6bd1e1aa0e6db6e6bfd3cecc4a23bf57f6a6d6ab90fb75e4a2c72344",
        "TEST": "aa6da0dc1461e8d374e068a940ce37d1b0bb1a9844596d818920c8af696d656d"}),
    "unittest": ("UnitTest", {
        "TRAIN": "6ce264a7cd41ccfb285e61831dc977a5572e17558551b251d0f1e427c8b9d335",
        "TEST": "1c28892222289640d0fb156823e183dd79e489e340cfcff16e5af3cf575fd218"}),
}


class TSFormatError(DataError):
    """A `.ts` file is malformed (bad header, ragged dimensions, unknown label, ...)."""


@dataclass
class TSData:
    """A parsed `.ts` file."""
    series: list[np.ndarray]            # per case: float32 (D, T_i); NaN = missing
    labels: np.ndarray                  # int64 (n,), index into class_names
    class_names: list[str]
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def n_dims(self) -> int:
        return self.series[0].shape[0]

    @property
    def lengths(self) -> np.ndarray:
        return np.array([s.shape[1] for s in self.series], dtype=np.int64)


def _parse_value(tok: str, where: str) -> float:
    tok = tok.strip()
    if tok == "?":
        return math.nan
    try:
        v = float(tok)
    except ValueError:
        raise TSFormatError(f"{where}: {tok[:30]!r} is not a number (nor '?' for missing)") from None
    # inf / 1e999 / nan (or beyond float32, where series are stored) would wreck the normalisation
    if not math.isfinite(v) or abs(v) > FLOAT32_MAX:
        raise TSFormatError(f"{where}: {tok[:30]!r} is not a finite number (use '?' for a missing value)")
    return v


def parse_ts(text: str, name: str = "<ts>", class_names: list[str] | None = None) -> TSData:
    """Parse the text of a `.ts` file. `class_names` fixes the label order (use the TRAIN file's).

    Raises TSFormatError with the file name and line number on anything malformed.
    """
    meta: dict[str, str] = {}
    labels_decl: list[str] | None = None
    series: list[np.ndarray] = []
    raw_labels: list[str] = []
    in_data = False
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        where = f"{name}:{lineno}"
        if not line or line[0] in "%#":
            continue
        if not in_data:
            if not line.startswith("@"):
                raise TSFormatError(f"{where}: expected a '@key value' header line or '@data' before the data, "
                                    f"got {line[:40]!r}")
            key, _, value = line[1:].partition(" ")
            key, value = key.lower(), value.strip()
            if key == "targetlabel":
                value = value.lower()
            if key == "targetlabel" and value.split()[:1] == ["true"]:
                raise TSFormatError(f"{where}: regression is not supported; this is a regression file "
                                    "(@targetLabel). sln trains classifiers: use a file with "
                                    "'@classLabel true <class names>'")
            if key == "data":
                in_data = True
                if meta.get("timestamps", "false").lower() == "true":
                    raise TSFormatError(f"{name}: '@timeStamps true' files are not supported by this reader")
                if meta.get("classlabel") is None and "targetlabel" in meta:
                    raise TSFormatError(f"{name}: regression is not supported; this is a regression file "
                                        "(@targetLabel) and has no '@classLabel' header")
                if meta.get("classlabel") is None:
                    raise TSFormatError(f"{name}: no '@classLabel' header; this reader needs labelled data")
                continue
            if key == "classlabel":
                parts = value.split()
                if not parts or parts[0].lower() not in ("true", "false"):
                    raise TSFormatError(f"{where}: '@classLabel' must be followed by true/false")
                if parts[0].lower() == "false":
                    raise TSFormatError(f"{where}: '@classLabel false' (unlabelled/regression) is not supported")
                labels_decl = parts[1:]
                if not labels_decl:
                    raise TSFormatError(f"{where}: '@classLabel true' lists no class names")
            meta[key] = value
            continue
        # data line: D dimensions separated by ':' then the label
        fields = line.split(":")
        if len(fields) < 2:
            raise TSFormatError(f"{where}: a data line needs 'values:label' (no ':' found)")
        *dims, label = fields
        label = label.strip()
        assert labels_decl is not None
        if label not in labels_decl:
            raise TSFormatError(f"{where}: class label {label!r} is not among the declared {labels_decl}")
        vals = [[_parse_value(t, where) for t in d.split(",")] for d in dims]
        lens = {len(v) for v in vals}
        if len(lens) != 1:
            raise TSFormatError(f"{where}: dimensions have different lengths {sorted(lens)}")
        series.append(np.asarray(vals, dtype=np.float32))  # (D, T)
        raw_labels.append(label)
    if not in_data:
        raise TSFormatError(f"{name}: no '@data' line; not a .ts file (or truncated header)")
    if not series:
        raise TSFormatError(f"{name}: no cases after '@data' (file truncated?)")
    n_dims = {s.shape[0] for s in series}
    if len(n_dims) != 1:
        raise TSFormatError(f"{name}: cases have different numbers of dimensions {sorted(n_dims)}")
    D = n_dims.pop()
    if "dimensions" in meta and int(meta["dimensions"]) != D:
        raise TSFormatError(f"{name}: header says {meta['dimensions']} dimensions, data has {D}")
    if meta.get("univariate", "").lower() == "true" and D != 1:
        raise TSFormatError(f"{name}: header says univariate, data has {D} dimensions")
    if meta.get("equallength", "").lower() == "true":
        lens = {s.shape[1] for s in series}
        want = int(meta["serieslength"]) if "serieslength" in meta else None
        if len(lens) != 1 or (want is not None and lens != {want}):
            raise TSFormatError(f"{name}: header says equal length {want}, data has lengths {sorted(lens)[:5]}")
    if meta.get("missing", "").lower() == "false" and any(np.isnan(s).any() for s in series):
        raise TSFormatError(f"{name}: header says no missing values but the data has '?'")
    names = list(class_names) if class_names is not None else list(labels_decl or [])
    try:
        labels = np.array([names.index(lab) for lab in raw_labels], dtype=np.int64)
    except ValueError as e:
        raise TSFormatError(f"{name}: label not among the training classes {names}") from e
    return TSData(series, labels, names, meta)


def read_ts(path: str | Path, class_names: list[str] | None = None) -> TSData:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise TSFormatError(f"{path}: not UTF-8 text ({e}); not a .ts file") from e
    return parse_ts(text, str(path), class_names)


# --- fetching -----------------------------------------------------------------------------

def _ts_member(wanted: dict[str, str]) -> Callable[[str], str | None]:
    """Select sktime/datasets/data/<arch>/<file>.ts members by their archive path."""
    return lambda name: wanted.get(name)


def ensure_ts(dataset: str, data_dir: Path | None = None) -> dict[str, Path]:
    """-> {'TRAIN': path, 'TEST': path} of verified, cached .ts files (fetched if absent)."""
    if dataset not in DATASETS:
        raise DataError(f"unknown time-series dataset {dataset!r}; known: {', '.join(DATASETS)}")
    arch, sums = DATASETS[dataset]
    folder = Path(data_dir or default_data_dir()) / "ucr" / arch
    paths = {s: folder / f"{arch}_{s}.ts" for s in sums}
    missing = [s for s, p in paths.items() if not p.is_file()]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        want = {f"{WHEEL_PREFIX}{arch}/{arch}_{s}.ts": f"{arch}_{s}.ts" for s in missing}
        try:
            fetch_members(SKTIME, _ts_member(want), folder, want.values())
        except DataError as e:
            raise DataError(f"time-series data not cached in {folder} ({e}). Copy the .ts files into "
                            f"{folder} or pass --data-dir.") from e
    for s, p in paths.items():
        digest = sha256_file(p)
        if digest != sums[s]:
            raise DataError(f"{p}: checksum mismatch (sha256 {digest[:16]}..., expected {sums[s][:16]}...). "
                            "Delete the file and run again to re-fetch it from the sktime wheel.")
    return paths


# --- tensors ------------------------------------------------------------------------------

@dataclass
class TSSplits:
    """Padded, normalised tensors of both splits."""
    x_train: torch.Tensor      # float32 (n, T, D), zero-padded after each series' length
    len_train: torch.Tensor    # int64 (n,)
    y_train: torch.Tensor      # int64 (n,)
    x_test: torch.Tensor
    len_test: torch.Tensor
    y_test: torch.Tensor
    class_names: list[str]
    mean: np.ndarray           # (D,) training statistics used for normalisation
    std: np.ndarray


def pad(series: list[np.ndarray], mean: np.ndarray, std: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """list of (D, T_i) -> normalised, zero-padded (n, T_max, D) and lengths (n,)."""
    lens = np.array([s.shape[1] for s in series])
    out = np.zeros((len(series), int(lens.max()), series[0].shape[0]), dtype=np.float32)
    for i, s in enumerate(series):
        z = (s.T - mean) / std                      # (T_i, D)
        out[i, : s.shape[1]] = np.nan_to_num(z, nan=0.0)
    return torch.from_numpy(out), torch.from_numpy(lens.astype(np.int64))


def channel_stats(tr: TSData) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean / std (D,) float32 over every training series and step (NaN skipped);
    a constant channel gets std 1. Stored in checkpoints so evaluation normalises the same way."""
    allv = np.concatenate([s for s in tr.series], axis=1)   # (D, sum T_i)
    mean = np.nanmean(allv, axis=1).astype(np.float32)
    std = np.nanstd(allv, axis=1).astype(np.float32)
    std = np.where(std > 1e-8, std, np.float32(1.0)).astype(np.float32)
    return mean, std


def check_channels(te: TSData, n_dims: int, what: str) -> None:
    """A test set must have the training set's channels (DataError: exit code 3 on the CLI)."""
    if te.n_dims != n_dims:
        raise TSFormatError(f"{what}: the test data has {te.n_dims} channel(s), the training data (model) "
                            f"{n_dims}; use a test file of the same kind as the training file")


def make_splits(tr: TSData, te: TSData, what: str) -> TSSplits:
    """Parsed TRAIN / TEST -> padded tensors, both normalised with the training statistics."""
    check_channels(te, tr.n_dims, what)
    mean, std = channel_stats(tr)
    xtr, ltr = pad(tr.series, mean, std)
    xte, lte = pad(te.series, mean, std)
    return TSSplits(xtr, ltr, torch.from_numpy(tr.labels), xte, lte, torch.from_numpy(te.labels),
                    tr.class_names, mean, std)


def load_ts_dataset(dataset: str, data_dir: Path | None = None) -> TSSplits:
    paths = ensure_ts(dataset, data_dir)
    tr = read_ts(paths["TRAIN"])
    te = read_ts(paths["TEST"], class_names=tr.class_names)
    return make_splits(tr, te, dataset)


def patch_factor(train_len_max: int, max_steps: int) -> int:
    """Samples per step so that the longest training series takes <= max_steps steps (0 = off: 1)."""
    return 1 if max_steps <= 0 or train_len_max <= max_steps else math.ceil(train_len_max / max_steps)


def patch_series(x: torch.Tensor, lengths: torch.Tensor, s: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut (n, T, D) series into patches of s consecutive samples, one patch per step: -> (n, ceil(T/s), s*D)
    (a step's input is its s samples, oldest first, channels interleaved per sample) and lengths ceil(len/s).
    The last patch of a series is zero-padded (0 = the channel mean after normalisation). s = 1: unchanged."""
    if s <= 1:
        return x, lengths
    n, T, D = x.shape
    T2 = math.ceil(T / s)
    xp = torch.zeros(n, T2 * s, D, dtype=x.dtype)
    xp[:, :T] = x
    return xp.reshape(n, T2, s * D), (lengths + s - 1) // s


SERIES_NORMS = ("global", "series")   # SLNConfig.series_norm
SCALE_EPS = 1e-3     # log(std + SCALE_EPS): a flat series' scale channel stays finite
STD_FLOOR = 1e-5     # z = (x - m) / max(std, STD_FLOOR): a constant series becomes 0, not NaN


def series_scale(x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-series, per-channel z-score over each series' valid steps of (n, T, D) series that were already
    normalised with the training split's statistics -> (z (n, T, D), padding 0; scale (n, 2 D): the series'
    mean and log(std + SCALE_EPS) / 3, per channel). The z-score keeps every series' shape at unit scale
    (PLAID's currents span five orders of magnitude: after the global z-score half of its training series had
    a standard deviation under 0.004, a flat line to the cell); the two scale channels keep the amplitude
    (BasicMotions) and the offset as inputs. Uses the whole series: offline classification, not a stream."""
    n, T, D = x.shape
    valid = (torch.arange(T)[None, :] < lengths[:, None])[..., None].to(x.dtype)      # (n, T, 1)
    cnt = valid.sum(1).clamp(min=1)
    m = (x * valid).sum(1) / cnt                                                      # (n, D)
    sd = (((x - m[:, None]) ** 2 * valid).sum(1) / cnt).sqrt()
    z = (x - m[:, None]) / sd.clamp(min=STD_FLOOR)[:, None] * valid
    return z, torch.cat([m, torch.log(sd + SCALE_EPS) / 3], 1)


def code_inputs(x: torch.Tensor, lengths: torch.Tensor, patch: int, levels: int, norm: str = "global"
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The recipe's input coding of normalised, padded series (training, evaluation and `sln evaluate` all
    call this): with norm "series" the per-series z-score (`series_scale`) first; then patches of `patch`
    samples and the level code of every value; with "series" the 2 D scale channels last, the same at every
    step (input_size = levels * patch * D + 2 D)."""
    if norm not in SERIES_NORMS:
        raise ValueError(f"series_norm must be one of {SERIES_NORMS}, got {norm!r}")
    scale = None
    if norm == "series":
        x, scale = series_scale(x, lengths)
    x, lengths = patch_series(x, lengths, patch)
    x = level_code(x, levels)
    if scale is not None:
        x = torch.cat([x, scale[:, None].expand(-1, x.shape[1], -1)], 2)
    return x, lengths


def patch_splits(data: TSSplits, max_steps: int, levels: int = 0, norm: str = "global") -> tuple[TSSplits, int]:
    """Both splits coded by `code_inputs` (per-series scaling with norm "series", patches with the factor of
    the training split's longest series, level code) -> (splits, patch factor)."""
    s = patch_factor(int(data.len_train.max()), max_steps)
    if s == 1 and levels <= 1 and norm == "global":
        return data, 1
    xtr, ltr = code_inputs(data.x_train, data.len_train, s, levels, norm)
    xte, lte = code_inputs(data.x_test, data.len_test, s, levels, norm)
    return TSSplits(xtr, ltr, data.y_train, xte, lte, data.y_test, data.class_names, data.mean, data.std), s


def level_code(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Soft thermometer code of every input value: (..., F) -> (..., F * levels), value v of feature f ->
    sigmoid((v - c_j) / w) for `levels` thresholds c_j evenly spaced in [-2.5, 2.5] (w = their spacing), so
    feature f's code is f*levels .. f*levels + levels - 1. Why: the cell's LayerNorm over W_in x + b removes
    the scale of a univariate input (LN(w v) is the same for every v > 0), so a raw value only tells its sign;
    coded, a value becomes a pattern that LayerNorm keeps. levels <= 1: unchanged."""
    if levels <= 1:
        return x
    c = torch.linspace(-2.5, 2.5, levels, dtype=x.dtype)
    w = 5.0 / (levels - 1)
    return torch.sigmoid((x[..., None] - c) / w).flatten(-2)


def drop_steps(x: torch.Tensor, lengths: torch.Tensor, drop: float, generator: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Irregular resampling: drop a random share `drop` of each series' steps.

    x (n, T, D), lengths (n,) -> x' (n, T', D), dt (n, T'), lengths' (n,), times (n, T').
    Series i keeps max(1, round((1-drop)*len_i)) steps, always its first one, in order.
    dt[i, j] = times[i, j] - times[i, j-1] (the true elapsed time, >= 1), dt[i, 0] = times[i, 0] + 1;
    `times` is the original step index of each kept step. Padding has x = 0 and dt = 0 (dt = 0
    leaves the liquid state unchanged); models must still mask padded steps from readouts.
    """
    times, dto, keep = drop_plan(lengths, drop, generator, x.dtype)
    return gather_steps(x, times, keep), dto, keep, times


def drop_plan(lengths: torch.Tensor, drop: float, generator: torch.Generator, dtype: torch.dtype = torch.float32
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """drop_steps without the values: which steps each series keeps, drawn on the CPU generator (the
    same draws as drop_steps) -> times (n, T') kept steps' indices (0 in the padding), dt (n, T'),
    kept lengths (n,). `gather_steps` then takes the values wherever the series live (a device)."""
    if not 0.0 <= drop < 1.0:
        raise ValueError(f"drop must be in [0, 1), got {drop}")
    n = len(lengths)
    keep_n = [max(1, int(round((1.0 - drop) * int(L)))) for L in lengths]
    T2 = max(keep_n)
    dto = torch.zeros(n, T2, dtype=dtype)
    times = torch.zeros(n, T2, dtype=torch.long)
    for i, L in enumerate(lengths.tolist()):
        rest = torch.randperm(L - 1, generator=generator)[: keep_n[i] - 1] + 1 if L > 1 else torch.empty(0)
        idx = torch.cat([torch.zeros(1, dtype=torch.long), torch.sort(rest.long()).values])
        prev = torch.cat([torch.full((1,), -1, dtype=torch.long), idx[:-1]])
        dto[i, : len(idx)] = (idx - prev).to(dtype)
        times[i, : len(idx)] = idx
    return times, dto, torch.tensor(keep_n, dtype=torch.long)


def gather_steps(x: torch.Tensor, times: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """x (n, T, D), kept step indices times (n, T'), kept lengths (n,) -> (n, T', D), zero after each
    series' kept steps; on x's device (times / keep there too), without reading a value to the host."""
    steps = x.gather(1, times[..., None].expand(-1, -1, x.shape[2]))
    valid = torch.arange(times.shape[1], device=x.device)[None, :] < keep[:, None]
    return torch.where(valid[..., None], steps, torch.zeros((), dtype=x.dtype, device=x.device))


def nn1_euclidean_accuracy(dataset: str, data_dir: Path | None = None) -> float:
    """The archives' straw-man baseline: 1-nearest-neighbour, squared Euclidean distance over all
    channels of the raw (unnormalised) series, zero-padded to a common length; test accuracy."""
    paths = ensure_ts(dataset, data_dir)
    tr = read_ts(paths["TRAIN"])
    te = read_ts(paths["TEST"], class_names=tr.class_names)
    T = int(max(tr.lengths.max(), te.lengths.max()))

    def flat(d: TSData) -> np.ndarray:          # (n, D*T) float64
        out = np.zeros((len(d.series), d.n_dims, T))
        for i, s in enumerate(d.series):
            out[i, :, : s.shape[1]] = np.nan_to_num(s)
        return out.reshape(len(d.series), -1)

    a, b = flat(tr), flat(te)
    d2 = (b * b).sum(1)[:, None] - 2 * b @ a.T + (a * a).sum(1)[None, :]     # (n_test, n_train)
    return float((tr.labels[d2.argmin(1)] == te.labels).mean())
