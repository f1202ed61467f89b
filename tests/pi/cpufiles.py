"""Write a Raspberry Pi 4 or 5's /proc/cpuinfo and /sys/devices/system/cpu tree into a folder.

Under qemu-user the guest sees the x86 host's cpu files, which LiteRT's cpu detection cannot
parse (it crashes in ``Interpreter()``), so the Pi check binds these over /proc/cpuinfo and
/sys/devices/system/cpu in the arm64 root. The values are those of the boards' own kernels:
four cores, one cluster, the MIDR of the core qemu emulates, the boards' clocks and caches.

    python3 tests/pi/cpufiles.py cortex-a72|cortex-a76 OUT   # OUT/cpuinfo, OUT/cpu/...
"""

from __future__ import annotations

import sys
from pathlib import Path

CORES = 4
# implementer 0x41 (Arm), variant, part, revision; features as the board's kernel lists them.
BOARDS = {
    "cortex-a72": {
        "board": "Raspberry Pi 4 Model B Rev 1.4",
        "revision": "c03114",
        "variant": 0x0,
        "part": 0xD08,
        "cpu_revision": 3,
        "features": "fp asimd evtstrm crc32 cpuid",
        "khz": (600000, 1800000),
        # (level, type, size KiB, ways, line, shared by all cores)
        "caches": [(1, "Data", 32, 2, 64, False), (1, "Instruction", 48, 3, 64, False),
                   (2, "Unified", 1024, 16, 64, True)],
        "hardware": "BCM2835",
    },
    "cortex-a76": {
        "board": "Raspberry Pi 5 Model B Rev 1.0",
        "revision": "d04170",
        "variant": 0x4,
        "part": 0xD0B,
        "cpu_revision": 1,
        "features": "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
        "asimdrdm lrcpc dcpop asimddp",
        "khz": (1500000, 2400000),
        "caches": [(1, "Data", 64, 4, 64, False), (1, "Instruction", 64, 4, 64, False),
                   (2, "Unified", 512, 8, 64, False), (3, "Unified", 2048, 16, 64, True)],
        "hardware": None,
    },
}


def cpuinfo(b: dict) -> str:
    blocks = [
        f"processor\t: {n}\nBogoMIPS\t: 108.00\nFeatures\t: {b['features']}\n"
        f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: {b['variant']:#x}\n"
        f"CPU part\t: {b['part']:#x}\nCPU revision\t: {b['cpu_revision']}\n"
        for n in range(CORES)
    ]
    tail = f"Hardware\t: {b['hardware']}\n" if b["hardware"] else ""
    tail += f"Revision\t: {b['revision']}\nSerial\t\t: 10000000deadbeef\nModel\t\t: {b['board']}\n"
    return "\n".join(blocks) + "\n" + tail


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n")


def cpu_tree(root: Path, b: dict) -> None:
    every = f"0-{CORES - 1}"
    for name in ("possible", "present", "online"):
        write(root / name, every)
    write(root / "offline", "")
    write(root / "kernel_max", str(CORES - 1))
    midr = (0x41 << 24) | (b["variant"] << 20) | (0xF << 16) | (b["part"] << 4) | b["cpu_revision"]
    lo, hi = b["khz"]
    for n in range(CORES):
        cpu = root / f"cpu{n}"
        write(cpu / "online", "1")
        write(cpu / "regs/identification/midr_el1", f"0x{midr:016x}")
        write(cpu / "regs/identification/revidr_el1", "0x0000000000000000")
        for key, value in {
            "cpuinfo_min_freq": lo, "cpuinfo_max_freq": hi, "scaling_min_freq": lo,
            "scaling_max_freq": hi, "scaling_cur_freq": hi, "cpuinfo_cur_freq": hi,
        }.items():
            write(cpu / "cpufreq" / key, str(value))
        write(cpu / "cpufreq/scaling_governor", "ondemand")
        for key, value in {
            "physical_package_id": "0", "cluster_id": "0", "core_id": str(n),
            "core_siblings_list": every, "package_cpus_list": every,
            "cluster_cpus_list": every, "thread_siblings_list": str(n), "core_cpus_list": str(n),
            "core_siblings": "f", "thread_siblings": f"{1 << n:x}",
        }.items():
            write(cpu / "topology" / key, value)
        for i, (level, kind, kib, ways, line, shared) in enumerate(b["caches"]):
            index = cpu / "cache" / f"index{i}"
            write(index / "level", str(level))
            write(index / "type", kind)
            write(index / "size", f"{kib}K")
            write(index / "ways_of_associativity", str(ways))
            write(index / "coherency_line_size", str(line))
            write(index / "number_of_sets", str(kib * 1024 // (ways * line)))
            write(index / "shared_cpu_list", every if shared else str(n))
            write(index / "shared_cpu_map", "f" if shared else f"{1 << n:x}")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in BOARDS:
        print(f"usage: cpufiles.py {'|'.join(BOARDS)} OUT", file=sys.stderr)
        return 2
    board, out = BOARDS[argv[0]], Path(argv[1])
    write(out / "cpuinfo", cpuinfo(board))
    cpu_tree(out / "cpu", board)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
