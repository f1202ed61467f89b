"""What a conversion made: the bundle's manifest, its folder, the ops and the parity report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pi_inspect.edge.bundle import Manifest


@dataclass
class ConvertResult:
    manifest: Manifest
    bundle_dir: Path
    ops: list
    parity: Any

    def summary(self) -> str:
        m = self.manifest
        size = (self.bundle_dir / m.model_file).stat().st_size
        lines = [
            f"bundle {self.bundle_dir}: {m.name} {m.version}, {m.quantization}, "
            f"{m.input_width}x{m.input_height} {m.input_dtype} input, {size / 1024:.0f} KiB, "
            f"sha256 {m.sha256[:12]}",
            f"ops: {len(self.ops)} ({', '.join(sorted({op.name for op in self.ops}))})",
        ]
        if self.parity is not None:
            lines.append(self.parity.table())
        return "\n".join(lines)
