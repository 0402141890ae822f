"""`sln generate`: arguments are validated and the text is streamed as it is generated."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sln.cli import run
from sln.config import SLNConfig
from sln.generate import generate, generate_stream, main
from sln.lm import save_lm
from sln.model import SLN
from sln.text import Vocab


@pytest.fixture()
def ckpt(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    vocab = Vocab("abcdefgh ")
    m = SLN(SLNConfig(task="lm", input_size=len(vocab), n_classes=len(vocab), n_neurons=32, active_frac=0.125))
    p = tmp_path / "lm.safetensors"
    save_lm(p, m, vocab)
    return p


def test_stream_yields_the_same_text_one_character_at_a_time(ckpt: Path) -> None:
    from sln.lm import load_lm
    model, vocab, _ = load_lm(ckpt)
    it = generate_stream(model, vocab, "abc", 40, temperature=0.9, top_k=4, seed=3)
    first = next(it)                       # available before the rest is computed
    rest = "".join(it)
    assert len(first) == 1 and len(first + rest) == 40
    assert first + rest == generate(model, vocab, "abc", 40, temperature=0.9, top_k=4, seed=3)
    assert generate(model, vocab, "abc", 40, temperature=0.9, top_k=4, seed=4) != first + rest


@pytest.mark.parametrize("flag, value", [("--tokens", "-5"), ("--temperature", "-1"), ("--top-k", "-2")])
def test_negative_arguments_are_refused(ckpt: Path, flag: str, value: str, capsys: pytest.CaptureFixture) -> None:
    assert run(main, ["--checkpoint", str(ckpt), "--prompt", "ab", flag, value]) == 2
    assert "must be >= 0" in capsys.readouterr().err


def test_cli_prints_prompt_and_tokens(ckpt: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--checkpoint", str(ckpt), "--prompt", "ab", "--tokens", "30", "--seed", "1"]) == 0
    out = capsys.readouterr().out.rstrip("\n")
    assert out.startswith("ab") and len(out) == 32 and set(out) <= set("abcdefgh ")
