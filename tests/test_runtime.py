"""C runtime (runtime/): generated header, bit-exactness with the Python integer reference on
1000 real MNIST test images, event-driven reads, and the untrusted-file loader (also under
-fsanitize=address,undefined)."""
from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _int8_helper import (  # noqa: E402
    RUNTIME,
    SPARSE_KEEP,
    artifacts,
    build,
    parse_dump,
    require_lsan,
    run_cli,
    sparse_artifacts,
    write_idx,
)

from sln import fmt, fmt_c, intspec, quant  # noqa: E402

E = fmt.ERROR_CODES
HO = fmt.HEADER_OFFSETS


def test_checked_in_header_is_generated_from_the_spec() -> None:
    assert (RUNTIME / "sln_format.h").read_text() == fmt_c.generate_c_header(), \
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
        ("wrong_version", lambda d: _put(bytearray(d), HO["version"], fmt.VERSION + 1), "SLN_ERR_VERSION"),
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


# --- column-sparse matrices (format version 2) ------------------------------------------------
def test_sparse_model_bit_exact_with_python_reference_on_1000_real_images() -> None:
    """The pruned test model stored column-sparse: the C runtime's winners and logits equal the
    Python integer reference on 1,000 real test images, and equal the same model stored dense."""
    a, sp = artifacts(), sparse_artifacts()
    data = sp.model_file.read_bytes()
    assert fmt.header_of(data)["version"] == 2 and fmt.header_of(sp.dense_file.read_bytes())["version"] == 1
    assert all(L.storage == {"w_in": "sparse", "w_rec": "sparse"} for L in sp.qm.layers)
    assert len(data) < 0.3 * sp.dense_file.stat().st_size           # 10 % of the weights, 2 bytes each
    ref_logits, ref_winners = intspec.reference_forward(sp.qm, a.images)
    for path in (sp.model_file, sp.dense_file):
        r = run_cli(build("host"), str(path), str(a.images_idx), str(a.labels_idx), "--dump")
        assert r.returncode == 0, r.stderr
        preds, logits, winners = parse_dump(r.stdout)
        assert len(preds) == 1000
        np.testing.assert_array_equal(winners, ref_winners.reshape(len(a.images), -1))
        np.testing.assert_array_equal(logits, ref_logits)
    # pruning without fine-tuning costs accuracy, but the model still classifies
    assert (ref_logits.argmax(1) == a.labels).mean() > 0.5


def test_sparse_layout_round_trip_padding_and_counts() -> None:
    """intspec.sparse_encode / fmt.sparse_decode on columns with gaps > 255 rows (padding
    entries), a nonzero past row 255 first, an empty column; the counter's reads are the entries."""
    rng = np.random.default_rng(5)
    w = np.zeros((5, 1200), np.int64)
    w[0, [0, 1, 300, 1199]] = [3, -4, 5, -6]        # gaps 1, 299 (1 pad), 899 (3 pads)
    w[1, 700] = 9                                     # first row 700: 2 pads, then 190
    w[3] = rng.integers(-127, 128, 1200) * (rng.random(1200) < 0.3)
    ptr, delta, val = intspec.sparse_encode(w)
    assert list(np.diff(ptr)[:3]) == [4 + 1 + 3, 1 + 2, 0]
    assert list(delta[:8]) == [0, 1, 255, 44, 255, 255, 255, 134] and list(val[:8]) == [3, -4, 0, 5, 0, 0, 0, -6]
    assert list(delta[8:11]) == [255, 255, 190] and list(val[8:11]) == [0, 0, 9]
    np.testing.assert_array_equal(intspec.column_entries(w), np.diff(ptr))
    np.testing.assert_array_equal(fmt.sparse_decode(ptr, delta, val, 5, 1200), w)
    assert delta.max() <= 255 and (delta[1:][np.diff(np.repeat(np.arange(5), np.diff(ptr))) == 0] >= 1).all()
    for bad in (lambda p, d: (p + 1, d), lambda p, d: (p, np.where(np.arange(len(d)) == 1, 0, d)),
                lambda p, d: (p, np.where(np.arange(len(d)) == 0, 255, d))):   # ptr[0]; a step of 0; row 1200+
        bp, bd = bad(ptr.copy(), delta.copy())
        with pytest.raises(ValueError):
            fmt.sparse_decode(bp, bd, val, 5, 1200)
    # the sparse test model: counted weight reads = stored entries of the event columns
    sp = sparse_artifacts()
    px = artifacts().images[:20]
    cnt = intspec.IntCounts()
    intspec.reference_forward(sp.qm, px, counter=cnt)
    L = sp.qm.layers[0]
    x = px.reshape(20, sp.qm.n_steps, sp.qm.input_size)
    ent = intspec.column_entries(L.w_in)
    assert cnt.terms["input"]["mac"] == cnt.terms["input"]["weight_bytes"] == float(ent[np.nonzero(x)[2]].sum())
    assert cnt.terms["input"]["index_bytes"] == float(ent[np.nonzero(x)[2]].sum() + 8 * (x != 0).sum())
    assert cnt.terms["input"]["mac"] < 0.15 * cnt.terms["input"]["events"] * 2 * sp.qm.n_neurons
    dense = intspec.IntCounts()
    intspec.reference_forward(fmt.from_bytes(sp.dense_file.read_bytes()), px, counter=dense)
    assert dense.terms["input"]["mac"] == dense.terms["input"]["events"] * 2 * sp.qm.n_neurons
    assert dense.terms["input"]["index_bytes"] == 0
    assert SPARSE_KEEP * 0.9 < (L.w_in != 0).mean() < SPARSE_KEEP * 1.5


def test_sparse_runtime_reads_only_event_columns_nonzeros() -> None:
    """Overwriting the stored values of the columns of zero pixels changes nothing; those of the
    nonzero pixels change the logits (the walk reads exactly the active columns' entries)."""
    a, sp = artifacts(), sparse_artifacts()
    data = sp.model_file.read_bytes()
    qm = sp.qm
    img = a.images[:1].reshape(qm.n_steps, qm.input_size)
    t = fmt.tensors_of(data)
    ptr = t[0 * 256 + 13].astype(np.int64)
    val_off = _tensor_offset(data, 0 * 256 + 15)
    one = a.root / "events" / "one_sparse.idx"
    one.parent.mkdir(exist_ok=True)
    write_idx(one, a.images[:1])
    base = _logits(sp.model_file, one)
    zero_cols, nz_cols = np.flatnonzero((img == 0).all(0)), np.flatnonzero((img != 0).any(0))
    for cols, should_change in ((zero_cols, False), (nz_cols[:3], True)):
        mutated = bytearray(data)
        for j in cols:
            mutated[val_off + ptr[j]: val_off + ptr[j + 1]] = bytes([0x7F]) * int(ptr[j + 1] - ptr[j])
        path = one.parent / f"s{should_change}.sln"
        path.write_bytes(bytes(mutated))
        assert (not np.array_equal(_logits(path, one), base)) == should_change


def _with_matrices(qm: intspec.QModel, edit) -> bytes:
    """to_bytes of qm with each layer's tensors passed through edit(arrays, dense arrays): files
    the writer would never make (a sparse triple incomplete, a matrix stored both ways)."""
    from unittest import mock

    orig = fmt._matrices
    with mock.patch.object(fmt, "_matrices", lambda arrays, storage: edit(orig(arrays, storage), arrays)):
        return fmt.to_bytes(qm)


def _sparse_malformed(d: bytes, qm: intspec.QModel) -> list[tuple[str, bytes, str]]:
    """Corruptions of the column-sparse tensors (layer 0 W_in: ptr 13, delta 14, val 15)."""
    PTR, DELTA, VAL = 13, 14, 15
    ptr = fmt.tensors_of(d)[PTR].astype(np.int64)
    j = int(np.flatnonzero(np.diff(ptr) >= 3)[0])              # a column with three entries or more
    po, do = _tensor_offset(d, PTR), _tensor_offset(d, DELTA)
    n = int(ptr[-1])
    zero_step, past_end = bytearray(d), bytearray(d)
    zero_step[do + int(ptr[j]) + 1] = 0                         # a second entry that does not advance
    past_end[do + int(ptr[j]): do + int(ptr[j + 1])] = bytes([255]) * int(ptr[j + 1] - ptr[j])   # rows >= 765 > 2N
    return [
        ("ptr_first_nonzero", _put(bytearray(d), po, 1), "SLN_ERR_VALUE"),
        ("ptr_decreasing", _put(bytearray(d), po + 4 * (j + 1), int(ptr[j]) - 1), "SLN_ERR_VALUE"),
        ("ptr_negative", _put(bytearray(d), po + 4 * (j + 1), 0x80000000), "SLN_ERR_VALUE"),
        ("delta_zero_not_first", zero_step, "SLN_ERR_VALUE"),
        ("delta_row_past_matrix", past_end, "SLN_ERR_VALUE"),
        ("ptr_last_not_count", _put(bytearray(d), po + 4 * (len(ptr) - 1), n - 1), "SLN_ERR_TENSOR_TYPE"),
        ("delta_count_mismatch", _put(bytearray(d), _entry(d, DELTA) + 12, n - 1), "SLN_ERR_TENSOR_TYPE"),
        ("delta_wrong_dtype", _put(bytearray(d), _entry(d, DELTA) + 4, fmt.DTYPES["int8"][0]), "SLN_ERR_TENSOR_TYPE"),
        ("val_count_huge", _put(bytearray(d), _entry(d, VAL) + 12, 0xFFFFFFFF), "SLN_ERR_TENSOR_BOUNDS"),
        ("v1_file_with_sparse_kinds", _put(bytearray(d), HO["version"], 1), "SLN_ERR_TENSOR_MISSING"),
        ("sparse_triple_incomplete", _with_matrices(qm, lambda out, _: {k: v for k, v in out.items()
                                                                       if k != "w_in_val"}),
         "SLN_ERR_TENSOR_MISSING"),
        ("stored_dense_and_sparse", _with_matrices(qm, lambda out, dense: {**out, "w_in": dense["w_in"]}),
         "SLN_ERR_TENSOR_MISSING"),
    ]


@pytest.mark.parametrize("program", ["host", "asan"])
def test_malformed_sparse_files_give_documented_errors(program: str) -> None:
    """Every corruption of a sparse matrix is refused by the loader (Prepare) with its documented
    code, so the step's column walks can stay unchecked; the Python parser refuses the bad indices."""
    sp = sparse_artifacts()
    exe = build(program)
    folder = artifacts().root / f"malformed-sparse-{program}"
    folder.mkdir(exist_ok=True)
    failures = []
    for name, data, want in _sparse_malformed(sp.model_file.read_bytes(), sp.qm):
        path = folder / f"{name}.sln"
        path.write_bytes(bytes(data))
        r = run_cli(exe, str(path), "--check")
        if r.returncode != E[want] or r.stdout.strip() != f"error {E[want]} {want}":
            failures.append((name, want, r.returncode, r.stdout.strip(), r.stderr[-500:]))
        if want == "SLN_ERR_VALUE" or name.startswith(("ptr_last", "delta_count", "v1_")):
            with pytest.raises(ValueError):
                fmt.from_bytes(bytes(data))
    assert not failures, failures


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
    dense_kinds = [kd for kd in fmt.FLOAT_LAYER_TENSORS if kd not in fmt.SPARSE_ONLY_KINDS]   # no zero weights
    assert len(t) == 2 * len(dense_kinds) + len(fmt.FLOAT_READOUT_TENSORS) and fh["version"] == 1
    path = tmp_path / "float.sln"
    path.write_bytes(fdata)
    for program in ("host", "asan"):
        r = run_cli(build(program), str(path), "--check")
        assert r.returncode == E["SLN_ERR_UNSUPPORTED"], r.stdout + r.stderr
    with pytest.raises(ValueError, match="int8"):
        fmt.from_bytes(fdata)


# --- the command-line program's own error paths (issue 12) -------------------------------------
# sysexits: 64 usage (a bad argument), 65 data (bad IDX / over the size cap), 66 cannot open/read

def _limited_memory(limit: int = 1 << 30):
    """preexec_fn: an address-space cap, so that an unbounded read fails fast instead of eating
    the machine (host build only: ASan reserves terabytes of shadow address space)."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return cap


@pytest.mark.parametrize("value", ["abc", "", "12x", "-1", "+-3", " 5", "4294967296", "4294967297",
                                   "99999999999999999999999", "0x10"])
def test_cli_rejects_malformed_numbers(value: str) -> None:
    """--limit went through an unchecked strtoul: "abc" was 0 images, "-1" every image,
    "4294967297" whatever the cast made of it. Now: usage error 64 naming the argument."""
    a = artifacts()
    r = run_cli(build("host"), str(a.model_file), str(a.images_idx), "--limit", value)
    assert r.returncode == 64, (value, r.returncode, r.stdout[-200:], r.stderr[-300:])
    assert "--limit" in r.stderr and r.stdout == ""


def test_cli_limit_accepts_valid_numbers_and_a_missing_value_is_a_usage_error() -> None:
    a = artifacts()
    exe = build("host")
    r = run_cli(exe, str(a.model_file), str(a.images_idx), "--limit", "3")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3, r.stderr
    r = run_cli(exe, str(a.model_file), str(a.images_idx), "--limit", "4294967295")   # > n: all
    assert r.returncode == 0 and len(r.stdout.splitlines()) == len(a.images), r.stderr
    r = run_cli(exe, str(a.model_file), str(a.images_idx), "--limit")
    assert r.returncode == 64 and "--limit" in r.stderr, (r.returncode, r.stderr)
    r = run_cli(exe, str(a.model_file), str(a.images_idx), "--bogus")
    assert r.returncode == 64 and "--bogus" in r.stderr, (r.returncode, r.stderr)


@pytest.mark.parametrize("which", ["model", "images", "labels"])
def test_cli_missing_or_unreadable_file_is_not_called_a_bad_format(which: str, tmp_path: Path) -> None:
    """A missing image file was reported as 'not an uncompressed IDX file' (65). Now: 66 and
    'cannot open PATH: <strerror>'; a folder gives 'cannot read PATH: Is a directory'."""
    a = artifacts()
    exe = build("host")
    for path, reason in ((tmp_path / "missing.bin", "No such file or directory"), (tmp_path, "Is a directory")):
        args = {"model": [str(path), str(a.images_idx)], "images": [str(a.model_file), str(path)],
                "labels": [str(a.model_file), str(a.images_idx), str(path)]}[which]
        r = run_cli(exe, *args)
        assert r.returncode == 66, (which, path, r.returncode, r.stderr)
        assert str(path) in r.stderr and reason in r.stderr and "IDX" not in r.stderr, r.stderr


def test_cli_caps_what_it_reads(tmp_path: Path) -> None:
    """/dev/zero as the model read without end (memory grew until realloc failed); a file over
    the cap is refused by its size before anything is allocated. Caps: model 64 MiB, IDX 1 GiB."""
    a = artifacts()
    exe = build("host")
    r = run_cli(exe, "/dev/zero", "--check", timeout=60, preexec_fn=_limited_memory())
    assert r.returncode == 65 and "/dev/zero" in r.stderr and "64 MiB" in r.stderr, (r.returncode, r.stderr)
    big_model = tmp_path / "big.sln"
    with open(big_model, "wb") as f:       # sparse: no disk used
        f.truncate(64 * 2**20 + 1)
    r = run_cli(exe, str(big_model), "--check", timeout=60, preexec_fn=_limited_memory())
    assert r.returncode == 65 and "64 MiB" in r.stderr, (r.returncode, r.stderr)
    big_images = tmp_path / "big.idx"
    with open(big_images, "wb") as f:
        f.truncate(2**30 + 1)
    r = run_cli(exe, str(a.model_file), str(big_images), timeout=60, preexec_fn=_limited_memory())
    assert r.returncode == 65 and "1 GiB" in r.stderr and str(big_images) in r.stderr, (r.returncode, r.stderr)
    r = run_cli(exe, str(a.model_file), "/dev/null")         # an empty non-regular file: a bad IDX
    assert r.returncode == 65 and "IDX" in r.stderr, (r.returncode, r.stderr)


def test_cli_frees_everything_on_every_exit_under_leak_sanitizer(tmp_path: Path) -> None:
    """The model buffer leaked on the error exits; LeakSanitizer (on here, detect_leaks=1) makes
    any leak exit 99. Every exit path: success, --check, load error, bad images, bad labels,
    missing files, bad argument."""
    require_lsan()
    a = artifacts()
    exe = build("asan")
    trunc = tmp_path / "trunc.idx"
    trunc.write_bytes(a.images_idx.read_bytes()[:-5])
    bad_model = tmp_path / "bad.sln"
    bad_model.write_bytes(b"GGUF" + a.model_file.read_bytes()[4:])
    cases = [
        ([str(a.model_file), str(a.images_idx), str(a.labels_idx), "--limit", "5"], 0),
        ([str(a.model_file), "--check"], 0),
        ([str(bad_model), str(a.images_idx)], E["SLN_ERR_MAGIC"]),
        ([str(a.model_file), str(trunc)], 65),
        ([str(a.model_file), str(a.images_idx), str(trunc)], 65),
        ([str(a.model_file), str(tmp_path / "none.idx")], 66),
        ([str(a.model_file), str(a.images_idx), str(tmp_path / "none.idx")], 66),
        ([str(a.model_file), str(a.images_idx), "--limit", "x"], 64),
    ]
    for args, want in cases:
        r = run_cli(exe, *args)
        assert "LeakSanitizer" not in r.stderr and r.returncode == want, (args, r.returncode, r.stderr[-2000:])


def _make_payloads(marker: Path) -> list[tuple[str, str]]:
    m = str(marker)
    shell = [f"x; touch {m}", f'x"; touch {m}; "', f"x' ; touch {m} ; '", f"$(shell touch {m})", f"`touch {m}`",
             f"$$(touch {m})", f"x && touch {m}", f"x | touch {m}", f"x\ntouch {m}"]
    out = [(v, p) for v in ("IMAGES", "MODEL_DIR", "BUILD", "QEMU_OUT", "LM_QEMU_OUT") for p in shell]
    out += [(v, p) for v in ("CC", "CFLAGS", "ARM_CC", "QEMU", "ARM_SIZE")
            for p in (f"cc; touch {m}", f"cc `touch {m}`", f"$(shell touch {m})", f"cc > {m}")]
    out += [("N", p) for p in (f"1; touch {m}", f"$(shell touch {m})", "1 2", "1e3", "")]
    out += [("LM_ARGS", p) for p in (f"1 2; touch {m}", f"$(shell touch {m})", "1 2 x", "-1 2")]
    return out


@pytest.mark.parametrize("target", ["run-mcu", "run-mcu-lm", "host"])
def test_makefile_variables_cannot_inject_commands(target: str, tmp_path: Path) -> None:
    """Values of the recipe variables with shell (or make) metacharacters are refused before any
    recipe runs, and create no marker file; the toolchain is stubbed with `true`, so this needs
    no ARM compiler or QEMU. (Before: `IMAGES='x"; touch PWNED; "'` and the unquoted N, LM_ARGS,
    CC, CFLAGS ran the command.)"""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for f in ("sln_model_data.c", "sln_model_data.h"):
        (model_dir / f).write_text("")
    marker = tmp_path / "PWNED"
    stub = {"ARM_CC": "true", "ARM_SIZE": "true", "QEMU": "true", "MODEL_DIR": str(model_dir),
            "BUILD": str(tmp_path / "build"), "CC": "true"}
    failures = []
    for var, payload in _make_payloads(marker):
        values = dict(stub, **{var: payload})
        r = subprocess.run(["make", "-C", str(RUNTIME), *(f"{k}={v}" for k, v in values.items()), target],
                           capture_output=True, text=True, cwd=tmp_path, timeout=60)
        refused = r.returncode != 0 and var in r.stderr and ("refused" in r.stderr or "must be" in r.stderr)
        if marker.exists() or not refused:
            failures.append((var, payload, r.returncode, marker.exists(), r.stderr[-300:]))
            marker.unlink(missing_ok=True)
    assert not failures, failures


def test_makefile_passes_safe_values_through_intact(tmp_path: Path) -> None:
    """An image path with a space and a comma reaches QEMU as one argument (`,,` is QEMU's
    escaped comma); numbers pass. QEMU is stubbed with echo, the ARM compiler with true.
    (MODEL_DIR and BUILD are make prerequisites/targets: make itself cannot take spaces there.)"""
    model_dir = tmp_path / "model_dir"
    model_dir.mkdir()
    for f in ("sln_model_data.c", "sln_model_data.h"):
        (model_dir / f).write_text("")
    r = subprocess.run(["make", "-C", str(RUNTIME), "ARM_CC=true", "QEMU=echo", f"MODEL_DIR={model_dir}",
                        f"BUILD={tmp_path / 'b'}", "IMAGES=my images,v2.idx", "N=7", "run-mcu"],
                       capture_output=True, text=True, timeout=60)
    assert "arg=firmware,arg=my images,,v2.idx,arg=7 -kernel" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(["make", "-C", str(RUNTIME), "ARM_CC=true", "QEMU=echo", f"MODEL_DIR={model_dir}",
                        f"BUILD={tmp_path / 'b'}", "LM_ARGS=20 1 205 10 3 4", "run-mcu-lm"],
                       capture_output=True, text=True, timeout=60)
    assert "arg=firmware_lm,arg=20,arg=1,arg=205,arg=10,arg=3,arg=4 -kernel" in r.stdout, r.stdout + r.stderr
