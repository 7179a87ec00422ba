"""Does the emulated CPU refuse what a Raspberry Pi 4's Cortex-A72 lacks?

Runs under the emulated (aarch64) Python. ``hwcap`` prints the CPU features
the kernel (here: qemu-user) advertises in AT_HWCAP; ``lse`` and ``dotprod``
execute one instruction of that extension (ARMv8.1 LSE atomics ``ldaddal``,
ARMv8.2 dot product ``sdot``) from an executable page. On a Cortex-A72 both
must die of SIGILL; on qemu's ``max`` CPU both must run, which shows the
probe itself is sound.

    qemu-aarch64-static -cpu cortex-a72 -L ROOT ROOT/usr/bin/python3 arm64_probe.py lse
"""

from __future__ import annotations

import ctypes
import mmap
import struct
import sys

RET = 0xD65F03C0
#: One instruction word per extension, followed by ``ret``; x0 points at a 16-byte scratch buffer.
PROBES = {
    "lse": 0xB8E10002,      # ldaddal w1, w2, [x0]   (FEAT_LSE, ARMv8.1)
    "dotprod": 0x4E829420,  # sdot v0.4s, v1.16b, v2.16b   (FEAT_DotProd, ARMv8.2)
}
#: AT_HWCAP bits (linux/arch/arm64/include/uapi/asm/hwcap.h).
HWCAP_BITS = {"fp": 0, "asimd": 1, "crc32": 7, "atomics": 8, "fphp": 9, "asimdhp": 10, "asimddp": 20}
AT_HWCAP = 16


def hwcap() -> int:
    data = open("/proc/self/auxv", "rb").read()
    for key, value in struct.iter_unpack("<QQ", data):
        if key == AT_HWCAP:
            return value
    raise SystemExit("arm64_probe: no AT_HWCAP in /proc/self/auxv")


def run(word: int) -> None:
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(struct.pack("<II", word, RET))
    fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
    scratch = (ctypes.c_uint32 * 4)()
    fn(ctypes.addressof(scratch))


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) > 1 else "hwcap"
    if what == "hwcap":
        caps = hwcap()
        print(" ".join(f"{name}={'yes' if caps >> bit & 1 else 'no'}" for name, bit in HWCAP_BITS.items()))
        return 0
    run(PROBES[what])
    print(f"{what}: executed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
