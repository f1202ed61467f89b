"""Latency of a bundle's int8 model against its float32 reference, on this machine.

Runs on the Pi as well as on the workstation: LiteRT only, no TensorFlow. The Raspberry Pi
figures are estimates scaled by multiply-accumulates from a published anchor, not measurements:
google/XNNPACK's README gives MobileNetV2 (1.0, 224: about 300 M MACs) on a Raspberry Pi 4 in
64-bit mode at 46 ms fp32 and 17 ms int8. For the Pi 5 (Cortex-A76 at 2.4 GHz against the Pi 4's
A72 at 1.8 GHz) we assume 2.5x the Pi 4's speed, as commonly reported for XNNPACK workloads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pi_inspect.convert.verify import count_macs, list_ops
from pi_inspect.edge.bundle import verify_bundle
from pi_inspect.edge.errors import BundleError

MOBILENETV2_MACS = 300e6
PI4_MS = {"int8": 17.0, "float32": 46.0}
PI5_SPEEDUP = 2.5


@dataclass(frozen=True)
class Latency:
    kind: str  # "int8" | "float32"
    file: str
    size_bytes: int
    macs: int
    p50_ms: float
    p95_ms: float
    runs: int

    @property
    def pi4_ms(self) -> float:
        return PI4_MS[self.kind] * self.macs / MOBILENETV2_MACS

    @property
    def pi5_ms(self) -> float:
        return self.pi4_ms / PI5_SPEEDUP


def time_model(path: Path, threads: int, runs: int, warmup: int = 20, seed: int = 0) -> list[float]:
    """Per-invoke wall times (ms) of a .tflite model on random inputs."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=threads)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    rng = np.random.default_rng(seed)
    if np.issubdtype(inp["dtype"], np.integer):
        info = np.iinfo(inp["dtype"])
        x = rng.integers(info.min, info.max + 1, size=inp["shape"], dtype=inp["dtype"])
    else:
        x = rng.uniform(0, 255, size=inp["shape"]).astype(inp["dtype"])
    for _ in range(warmup):
        interp.set_tensor(inp["index"], x)
        interp.invoke()
    times = []
    for _ in range(runs):
        interp.set_tensor(inp["index"], x)
        t0 = time.perf_counter()
        interp.invoke()
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def bench_bundle(bundle_dir: Path, threads: int = 1, runs: int = 200, rounds: int = 5) -> list[Latency]:
    """Time the int8 and float32 models interleaved in ``rounds`` so noise hits both alike."""
    manifest = verify_bundle(bundle_dir)  # every named file inside the bundle, hashes right
    files = {manifest.quantization: manifest.model_file}
    if manifest.reference_model:
        files["float32"] = manifest.reference_model
    samples: dict[str, list[float]] = {k: [] for k in files}
    per_round = max(1, runs // rounds)
    name = manifest.model_file
    try:
        macs = {}
        for kind, name in files.items():
            macs[kind] = count_macs(list_ops((bundle_dir / name).read_bytes()))
        for r in range(rounds):
            for kind, name in files.items():
                samples[kind].extend(time_model(bundle_dir / name, threads, per_round, seed=r))
    except (ValueError, RuntimeError, KeyError, IndexError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BundleError(f"bundle {bundle_dir}: the runtime cannot run {name} ({first})") from None
    return [
        Latency(
            kind=kind if kind in PI4_MS else "float32",
            file=name,
            size_bytes=(bundle_dir / name).stat().st_size,
            macs=macs[kind],
            p50_ms=float(np.percentile(samples[kind], 50)),
            p95_ms=float(np.percentile(samples[kind], 95)),
            runs=len(samples[kind]),
        )
        for kind, name in files.items()
    ]


def report(results: list[Latency], threads: int) -> str:
    lines = [
        f"threads={threads}",
        f"{'model':<8} {'file':<22} {'size':>9} {'MMACs':>7} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'Pi4 est':>8} {'Pi5 est':>8}",
    ]
    for r in results:
        lines.append(
            f"{r.kind:<8} {r.file:<22} {r.size_bytes / 1024:7.0f}Ki {r.macs / 1e6:7.1f} "
            f"{r.p50_ms:8.3f} {r.p95_ms:8.3f} {r.pi4_ms:7.1f}ms {r.pi5_ms:7.1f}ms"
        )
    by = {r.kind: r for r in results}
    if "int8" in by and "float32" in by:
        lines.append(f"int8/fp32 latency ratio (p50): {by['int8'].p50_ms / by['float32'].p50_ms:.3f}")
    lines.append(
        "Pi estimates: MACs scaled from XNNPACK's MobileNetV2 anchor (Pi 4, 64-bit: 46 ms fp32, "
        "17 ms int8); Pi 5 assumed 2.5x a Pi 4."
    )
    return "\n".join(lines)
