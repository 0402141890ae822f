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
from _int8_helper import RUNTIME, artifacts, build, run_cli  # noqa: E402

TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm", "qemu-system-arm")
N_IMAGES = 200
FLASH_TARGET, RAM_TARGET = 256 * 1024, 64 * 1024


@pytest.fixture(scope="module")
def firmware() -> Path:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        if os.environ.get("SLN_REQUIRE_MCU"):
            pytest.fail(f"SLN_REQUIRE_MCU is set but {missing} are not installed "
                        "(apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)")
        pytest.skip(f"ARM toolchain / QEMU not installed: {missing}")
    a = artifacts()
    out = a.root / "build"
    r = subprocess.run(["make", "-C", str(RUNTIME), f"BUILD={out}", f"MODEL_DIR={a.export_dir}", "mcu"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return out / "mcu" / "firmware.elf"


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


def test_firmware_fits_flash_and_ram_targets(firmware: Path) -> None:
    r = subprocess.run(["arm-none-eabi-size", "-A", str(firmware)], capture_output=True, text=True, check=True)
    sec = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\.\S+)\s+(\d+)\s+\d+", r.stdout, re.M)}
    flash = sec[".isr_vector"] + sec[".text"] + sec[".rodata"] + sec.get(".ARM.exidx", 0) + sec.get(".data", 0)
    ram = sec.get(".data", 0) + sec[".bss"] + sec[".stack"]
    assert sec[".rodata"] >= artifacts().model_file.stat().st_size   # the model really is in flash
    assert flash <= FLASH_TARGET, sec
    assert ram <= RAM_TARGET, sec


def test_firmware_uses_no_floating_point(firmware: Path) -> None:
    nm = subprocess.run(["arm-none-eabi-nm", str(firmware)], capture_output=True, text=True, check=True).stdout
    soft_float = re.findall(r"\b(__aeabi_[fd]\w+|__(?:add|sub|mul|div)[sd]f3|__float\w+|__fix\w+)\b", nm)
    assert not soft_float, soft_float
    assert "sln_run" in nm and "sln_load" in nm
