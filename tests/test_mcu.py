"""Cortex-M4 firmware under QEMU (mps2-an386, semihosting): same predictions as the host
runtime, fits the flash/RAM targets, uses no floating point. Skipped only when the ARM
toolchain or QEMU is missing AND SLN_REQUIRE_MCU is unset (CI sets SLN_REQUIRE_MCU=1)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _int8_helper import RUNTIME, artifacts, build, run_cli, sparse_artifacts  # noqa: E402

TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm", "qemu-system-arm")
N_IMAGES = 200
FLASH_TARGET, RAM_TARGET = 256 * 1024, 64 * 1024


def _build_firmware(build_dir: Path, model_dir: Path) -> Path:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        if os.environ.get("SLN_REQUIRE_MCU"):
            pytest.fail(f"SLN_REQUIRE_MCU is set but {missing} are not installed "
                        "(apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)")
        pytest.skip(f"ARM toolchain / QEMU not installed: {missing}")
    r = subprocess.run(["make", "-C", str(RUNTIME), f"BUILD={build_dir}", f"MODEL_DIR={model_dir}", "mcu"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return build_dir / "mcu" / "firmware.elf"


@pytest.fixture(scope="module")
def firmware() -> Path:
    a = artifacts()
    return _build_firmware(a.root / "build", a.export_dir)


@pytest.fixture(scope="module")
def sparse_firmware() -> Path:
    """The firmware with the column-sparse (format version 2) test model compiled in."""
    return _build_firmware(artifacts().root / "build_sparse", sparse_artifacts().export_dir)


def _qemu(elf: Path, images: Path, n: int) -> tuple[int, str]:
    """-> (exit status, semihosting output). The output goes through a file chardev: QEMU's
    non-blocking stdio backend can drop semihosting output written into a pipe."""
    out = elf.parent / "qemu-output.txt"
    out.unlink(missing_ok=True)
    r = subprocess.run(
        ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
         "-icount", "shift=0", "-chardev", f"file,id=semi,path={out}", "-semihosting-config",
         f"enable=on,target=native,chardev=semi,arg=firmware,arg={images},arg={n}", "-kernel", str(elf)],
        capture_output=True, text=True, timeout=300)
    return r.returncode, (out.read_text() if out.exists() else "") + r.stderr


def test_qemu_predictions_equal_host_runtime(firmware: Path) -> None:
    a = artifacts()
    rc, text = _qemu(firmware, a.images_idx, N_IMAGES)
    assert rc == 0, text[-3000:]
    mcu = [line for line in text.splitlines() if re.fullmatch(r"\d+ \d+", line)]
    host = run_cli(build("host"), str(a.model_file), str(a.images_idx), "--limit", str(N_IMAGES))
    assert host.returncode == 0
    host_lines = [line for line in host.stdout.splitlines() if re.fullmatch(r"\d+ \d+", line)]
    assert len(mcu) == N_IMAGES and mcu == host_lines
    # -icount shift=0: 1 ns of virtual time per instruction; SysTick at 25 MHz = 40 insns/tick
    # 200,000 instructions / 40 per tick = 5,000 ticks; the count is 5,001 when the loop starts
    # late in a tick (the phase depends on the instructions run before, i.e. on the model), so
    # the design guarantees 5,000 +- 1 (40 instructions per tick within 0.02 %)
    calib = int(re.search(r"calib 200000 insn ticks (\d+)", text).group(1))
    assert abs(calib - 200_000 // 40) <= 1, text[-500:]
    ticks = int(re.search(r"insn_ticks (\d+) images", text).group(1))
    insn_per_inference = 40 * ticks / N_IMAGES
    assert 1e5 < insn_per_inference < 5e6, insn_per_inference


def _sizes(elf: Path) -> tuple[int, int, dict[str, int]]:
    """-> (flash, RAM, sections) of a firmware ELF (arm-none-eabi-size -A)."""
    r = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True, check=True)
    sec = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\.\S+)\s+(\d+)\s+\d+", r.stdout, re.M)}
    flash = sec[".isr_vector"] + sec[".text"] + sec[".rodata"] + sec.get(".ARM.exidx", 0) + sec.get(".data", 0)
    return flash, sec.get(".data", 0) + sec[".bss"] + sec[".stack"], sec


def test_firmware_fits_flash_and_ram_targets(firmware: Path) -> None:
    flash, ram, sec = _sizes(firmware)
    assert sec[".rodata"] >= artifacts().model_file.stat().st_size   # the model really is in flash
    assert flash <= FLASH_TARGET, sec
    assert ram <= RAM_TARGET, sec


def _no_float(elf: Path) -> None:
    nm = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    soft_float = re.findall(r"\b(__aeabi_[fd]\w+|__(?:add|sub|mul|div)[sd]f3|__float\w+|__fix\w+)\b", nm)
    assert not soft_float, soft_float
    assert "sln_run" in nm and "sln_load" in nm


def test_firmware_uses_no_floating_point(firmware: Path) -> None:
    _no_float(firmware)


def test_sparse_model_on_qemu_equals_host_and_is_smaller_and_faster(firmware: Path, sparse_firmware: Path) -> None:
    """The column-sparse model (10 % of the weights, format version 2) on the Cortex-M4: the same
    predictions as the host runtime on 200 real images (whose int8 C runtime tests/test_runtime.py
    proves equal to the Python reference), no floating point, under the flash / RAM targets, with
    less flash and fewer instructions per inference than the dense test model."""
    a, sp = artifacts(), sparse_artifacts()
    rc, text = _qemu(sparse_firmware, a.images_idx, N_IMAGES)
    assert rc == 0, text[-3000:]
    mcu = [line for line in text.splitlines() if re.fullmatch(r"\d+ \d+", line)]
    host = run_cli(build("host"), str(sp.model_file), str(a.images_idx), "--limit", str(N_IMAGES))
    assert host.returncode == 0
    assert len(mcu) == N_IMAGES and mcu == [ln for ln in host.stdout.splitlines() if re.fullmatch(r"\d+ \d+", ln)]
    _no_float(sparse_firmware)
    flash, ram, sec = _sizes(sparse_firmware)
    assert sec[".rodata"] >= sp.model_file.stat().st_size and flash <= FLASH_TARGET and ram <= RAM_TARGET, sec
    assert flash < 0.5 * _sizes(firmware)[0]
    sparse_insn = 40 * int(re.search(r"insn_ticks (\d+) images", text).group(1)) / N_IMAGES
    rc, dense_text = _qemu(firmware, a.images_idx, 20)
    assert rc == 0
    dense_insn = 40 * int(re.search(r"insn_ticks (\d+) images", dense_text).group(1)) / 20
    assert 1e5 < sparse_insn < 0.8 * dense_insn, (sparse_insn, dense_insn)
