"""C runtime (runtime/): generated header, bit-exactness with the Python integer reference on
1000 real MNIST test images, event-driven reads, and the untrusted-file loader (also under
-fsanitize=address,undefined)."""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _int8_helper import RUNTIME, artifacts, build, parse_dump, run_cli, write_idx  # noqa: E402

from sln import fmt, intspec, quant  # noqa: E402

E = fmt.ERROR_CODES
HO = fmt.HEADER_OFFSETS


def test_checked_in_header_is_generated_from_the_spec() -> None:
    assert (RUNTIME / "sln_format.h").read_text() == fmt.generate_c_header(), \
        "runtime/sln_format.h is stale: run `python -m sln.export --write-header`"


def test_bit_exact_with_python_reference_on_1000_real_images() -> None:
    a = artifacts()
    qm = fmt.from_bytes(a.model_file.read_bytes())     # the reference runs on the file's bytes
    ref_logits, ref_winners = intspec.reference_forward(qm, a.images)
    r = run_cli(build("host"), str(a.model_file), str(a.images_idx), str(a.labels_idx), "--dump")
    assert r.returncode == 0, r.stderr
    preds, logits, winners = parse_dump(r.stdout)
    assert len(preds) == len(a.images) == 1000
    np.testing.assert_array_equal(winners, ref_winners.reshape(len(a.images), -1))   # same winners
    np.testing.assert_array_equal(logits, ref_logits)                                # same logits
    np.testing.assert_array_equal(preds, ref_logits.argmax(1))
    acc = (preds == a.labels).mean()
    assert f"accuracy {int(round(acc * 1000))}/1000 {100 * acc:.2f}" in r.stdout
    assert abs(acc - a.report["test"]["int8_accuracy"]) < 1e-9
    assert f"workspace {fmt.workspace_bytes(qm)} bytes" in r.stderr


def test_runtime_reads_only_event_columns() -> None:
    """Event-driven: the weight columns of zero pixels must not influence the result, those of
    nonzero pixels must (corrupting them in the file changes the logits)."""
    a = artifacts()
    data = bytearray(a.model_file.read_bytes())
    qm = fmt.from_bytes(bytes(data))
    img = a.images[:1].reshape(qm.n_steps, qm.input_size)
    zero_cols = np.flatnonzero((img == 0).all(0))      # pixel positions that are 0 at every step
    nz_cols = np.flatnonzero((img != 0).any(0))
    off = _tensor_offset(bytes(data), 0 * 256 + 1)     # layer 0 w_in, (D, 2N) input-major
    width = 2 * qm.n_neurons
    exp_dir = a.root / "events"
    exp_dir.mkdir(exist_ok=True)
    export_one = a.root / "events" / "one.idx"
    write_idx(export_one, a.images[:1])
    base = _logits(a.model_file, export_one)
    for cols, should_change in ((zero_cols, False), (nz_cols[:3], True)):
        mutated = bytearray(data)
        for j in cols:
            mutated[off + j * width: off + (j + 1) * width] = bytes([0x7F]) * width
        path = exp_dir / f"m{should_change}.sln"
        path.write_bytes(bytes(mutated))
        changed = not np.array_equal(_logits(path, export_one), base)
        assert changed == should_change


def _logits(model: Path, images: Path) -> np.ndarray:
    r = run_cli(build("host"), str(model), str(images), "--dump")
    assert r.returncode == 0, r.stderr
    return parse_dump(r.stdout)[1]


def _tensor_offset(data: bytes, tid: int) -> int:
    n, table = struct.unpack_from("<2I", data, HO["n_tensors"])
    for i in range(n):
        t, _, off, _ = struct.unpack_from("<4I", data, table + 16 * i)
        if t == tid:
            return off
    raise KeyError(tid)


def _entry(data: bytes, tid: int) -> int:
    """byte offset of tensor `tid`'s table entry"""
    n, table = struct.unpack_from("<2I", data, HO["n_tensors"])
    for i in range(n):
        if struct.unpack_from("<I", data, table + 16 * i)[0] == tid:
            return table + 16 * i
    raise KeyError(tid)


def _put(data: bytearray, off: int, value: int) -> bytearray:
    struct.pack_into("<I", data, off, value & 0xFFFFFFFF)
    return data


def _malformed() -> list[tuple[str, object, str]]:
    """(name, mutation(bytes) -> bytes, expected error) built from the format spec."""
    W_IN, SHIFT, BOOST, LUT = 0 * 256 + 1, 0 * 256 + 3, 0 * 256 + 10, 0 * 256 + 11
    cases = [
        ("empty", lambda d: b"", "SLN_ERR_TRUNCATED"),
        ("truncated_in_header", lambda d: d[:100], "SLN_ERR_TRUNCATED"),
        ("header_only", lambda d: d[:fmt.HEADER_SIZE], "SLN_ERR_TRUNCATED"),
        ("truncated_last_byte", lambda d: d[:-1], "SLN_ERR_TRUNCATED"),
        ("truncated_half", lambda d: d[: len(d) // 2], "SLN_ERR_TRUNCATED"),
        ("wrong_magic", lambda d: b"GGUF" + d[4:], "SLN_ERR_MAGIC"),
        ("wrong_version", lambda d: _put(bytearray(d), HO["version"], 2), "SLN_ERR_VERSION"),
        ("version_zero", lambda d: _put(bytearray(d), HO["version"], 0), "SLN_ERR_VERSION"),
        ("header_size", lambda d: _put(bytearray(d), HO["header_size"], 64), "SLN_ERR_HEADER"),
        ("file_size_past_end", lambda d: _put(bytearray(d), HO["file_size"], len(d) + 1), "SLN_ERR_TRUNCATED"),
        ("file_size_huge", lambda d: _put(bytearray(d), HO["file_size"], 0xFFFFFFFF), "SLN_ERR_TRUNCATED"),
        ("n_neurons_overflowing", lambda d: _put(bytearray(d), HO["n_neurons"], 0x80000000), "SLN_ERR_UNSUPPORTED"),
        ("input_size_zero", lambda d: _put(bytearray(d), HO["input_size"], 0), "SLN_ERR_UNSUPPORTED"),
        ("k_above_limit", lambda d: _put(bytearray(d), HO["k"], 100000), "SLN_ERR_UNSUPPORTED"),
        ("n_layers_zero", lambda d: _put(bytearray(d), HO["n_layers"], 0), "SLN_ERR_UNSUPPORTED"),
        ("n_tensors_overflowing", lambda d: _put(bytearray(d), HO["n_tensors"], 0x10000001), "SLN_ERR_HEADER"),
        ("table_past_end", lambda d: _put(bytearray(d), HO["table_offset"], len(d) - 8), "SLN_ERR_HEADER"),
        ("table_offset_wraps", lambda d: _put(bytearray(d), HO["table_offset"], 0xFFFFFFF0), "SLN_ERR_HEADER"),
        ("tensor_offset_past_end", lambda d: _put(bytearray(d), _entry(d, W_IN) + 8, len(d)), "SLN_ERR_TENSOR_BOUNDS"),
        ("tensor_offset_wraps", lambda d: _put(bytearray(d), _entry(d, LUT) + 8, 0xFFFFFFFC), "SLN_ERR_TENSOR_BOUNDS"),
        ("tensor_offset_into_header", lambda d: _put(bytearray(d), _entry(d, LUT) + 8, 16), "SLN_ERR_TENSOR_BOUNDS"),
        ("tensor_misaligned", lambda d: _put(bytearray(d), _entry(d, LUT) + 8,
                                             _tensor_offset(d, LUT) + 1), "SLN_ERR_TENSOR_BOUNDS"),
        ("tensor_count_overflowing", lambda d: _put(bytearray(d), _entry(d, BOOST) + 12, 0x40000001),
         "SLN_ERR_TENSOR_TYPE"),
        ("tensor_wrong_dtype", lambda d: _put(bytearray(d), _entry(d, W_IN) + 4, 2), "SLN_ERR_TENSOR_TYPE"),
        ("tensor_duplicated", lambda d: _put(bytearray(d), _entry(d, LUT), BOOST), "SLN_ERR_TENSOR_MISSING"),
        ("tensor_unknown_kind", lambda d: _put(bytearray(d), _entry(d, BOOST), 0 * 256 + 30),
         "SLN_ERR_TENSOR_MISSING"),
        ("tensor_missing", lambda d: _put(bytearray(d), HO["n_tensors"],
                                          struct.unpack_from("<I", d, HO["n_tensors"])[0] - 1),
         "SLN_ERR_TENSOR_MISSING"),
        ("shift_out_of_range", lambda d: _put(bytearray(d), _tensor_offset(d, SHIFT), 63), "SLN_ERR_VALUE"),
        ("lut_out_of_range", lambda d: _put(bytearray(d), _tensor_offset(d, LUT), 40000), "SLN_ERR_VALUE"),
    ]
    return cases


@pytest.mark.parametrize("program", ["host", "asan"])
def test_malformed_files_give_documented_errors(program: str) -> None:
    a = artifacts()
    good = a.model_file.read_bytes()
    exe = build(program)
    r = run_cli(exe, str(a.model_file), "--check")
    assert r.returncode == 0 and r.stdout.strip() == "ok 0 SLN_OK", r.stdout + r.stderr
    folder = a.root / f"malformed-{program}"
    folder.mkdir(exist_ok=True)
    failures = []
    for name, mutate, want in _malformed():
        path = folder / f"{name}.sln"
        path.write_bytes(bytes(mutate(good)))
        r = run_cli(exe, str(path), "--check")
        if r.returncode != E[want] or r.stdout.strip() != f"error {E[want]} {want}":
            failures.append((name, want, r.returncode, r.stdout.strip(), r.stderr[-500:]))
    assert not failures, failures


def test_loader_fuzz_under_sanitizers() -> None:
    """Random corruption of header/table/parameter bytes: every file gives ok or a documented
    error, and ASan/UBSan (exit 98/99) never fire. Inference runs on the files that load."""
    a = artifacts()
    good = a.model_file.read_bytes()
    exe = build("asan")
    rng = np.random.default_rng(1234)
    folder = a.root / "fuzz"
    folder.mkdir(exist_ok=True)
    one = folder / "img.idx"
    write_idx(one, a.images[:2])
    hot = fmt.HEADER_SIZE + 16 * 16   # header + table
    codes = set()
    for i in range(60):
        d = bytearray(good)
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(0, hot)) if rng.random() < 0.8 else int(rng.integers(0, len(d)))
            d[pos] = int(rng.integers(0, 256))
        if rng.random() < 0.2:
            d = d[: int(rng.integers(0, len(d)))]
        path = folder / f"f{i}.sln"
        path.write_bytes(bytes(d))
        r = run_cli(exe, str(path), str(one))
        # 65: the CLI's "images do not match the model's input size" (header field corrupted)
        assert r.returncode in set(E.values()) | {65}, (i, r.returncode, r.stderr[-2000:])
        codes.add(r.returncode)
    assert len(codes) >= 3, codes


def test_inference_under_sanitizers_matches_reference() -> None:
    a = artifacts()
    qm = fmt.from_bytes(a.model_file.read_bytes())
    ref_logits, ref_winners = intspec.reference_forward(qm, a.images[:100])
    r = run_cli(build("asan"), str(a.model_file), str(a.images_idx), "--limit", "100", "--dump")
    assert r.returncode == 0, r.stderr[-3000:]
    _, logits, winners = parse_dump(r.stdout)
    np.testing.assert_array_equal(logits, ref_logits)
    np.testing.assert_array_equal(winners, ref_winners.reshape(100, -1))


def test_cli_rejects_bad_inputs() -> None:
    a = artifacts()
    exe = build("host")
    assert run_cli(exe).returncode == 64
    bad = a.root / "bad.idx"
    bad.write_bytes(a.images_idx.read_bytes()[:-5])       # truncated IDX
    r = run_cli(exe, str(a.model_file), str(bad))
    assert r.returncode == 65 and "IDX" in r.stderr


def test_two_layer_model_bit_exact(tmp_path: Path) -> None:
    """A stacked (n_layers=2) model with random weights and boosts: layer 2 reads layer 1's
    winners as its events; C and the Python reference must still agree bit for bit."""
    import torch

    from sln.model import create_model

    a = artifacts()
    torch.manual_seed(3)
    model = create_model("sln-tiny", n_layers=2, n_neurons=64, active_frac=0.1).eval()
    with torch.no_grad():
        for cell in model.cells:
            cell.boost.uniform_(0.3, 2.7)
    qm = quant.quantize(model, a.images[500:700])
    path = tmp_path / "two.sln"
    path.write_bytes(fmt.to_bytes(qm))
    write_idx(tmp_path / "img.idx", a.images[:200])
    ref_logits, ref_winners = intspec.reference_forward(fmt.from_bytes(path.read_bytes()), a.images[:200])
    r = run_cli(build("host"), str(path), str(tmp_path / "img.idx"), "--dump")
    assert r.returncode == 0, r.stderr
    _, logits, winners = parse_dump(r.stdout)
    assert winners.shape == (200, 2 * qm.n_steps * qm.k)
    np.testing.assert_array_equal(winners, ref_winners.reshape(200, -1))
    np.testing.assert_array_equal(logits, ref_logits)


def test_float32_format_keeps_int8_files_and_is_refused_by_int8_builds(tmp_path: Path) -> None:
    """numeric was header padding: int8 files carry 0 there (byte-identical to before, VERSION 1);
    a float32 file loads only in builds with SLN_FLOAT (the engine), never in the CLI/firmware."""
    import torch

    from sln.config import SLNConfig
    from sln.model import SLN

    a = artifacts()
    data = a.model_file.read_bytes()
    h = fmt.header_of(data)
    assert h["numeric"] == 0 and h["version"] == 1 and data[HO["numeric"]:fmt.HEADER_SIZE] == bytes(76)
    assert fmt.to_bytes(fmt.from_bytes(data)) == data
    torch.manual_seed(0)
    m = SLN(SLNConfig(n_neurons=32, active_frac=0.125, input_size=196, n_layers=2)).eval()
    fdata = fmt.float_model_bytes(m)
    fh = fmt.header_of(fdata)
    assert (fh["numeric"], fh["n_steps"], fh["model_kind"]) == (1, 0, 0)
    t = fmt.tensors_of(fdata)
    np.testing.assert_array_equal(t[0 * 256 + 1].reshape(196, 64), m.cells[0].w_in.weight.detach().numpy().T)
    assert len(t) == 2 * len(fmt.FLOAT_LAYER_TENSORS) + len(fmt.FLOAT_READOUT_TENSORS)
    path = tmp_path / "float.sln"
    path.write_bytes(fdata)
    for program in ("host", "asan"):
        r = run_cli(build(program), str(path), "--check")
        assert r.returncode == E["SLN_ERR_UNSUPPORTED"], r.stdout + r.stderr
    with pytest.raises(ValueError, match="int8"):
        fmt.from_bytes(fdata)
