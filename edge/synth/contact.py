"""A contact sheet: a grid of generated samples with their labels written under each."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pi_inspect.edge.synth.still import Sample

_BOX_BGR = {"error": (0, 0, 255), "break": (255, 128, 0)}


def _caption(labels: dict[str, bool]) -> str:
    if labels["good"]:
        return "good"
    parts = [name for name in ("error", "break") if labels[name]]
    parts.append("2mm" if labels["length"] else "4mm(length)")
    return " ".join(parts)


def contact_sheet(
    samples: Sequence[Sample], columns: int = 4, scale: int = 2, boxes: bool = True
) -> np.ndarray:
    """BGR grid of ``samples`` enlarged ``scale`` times, a caption under each, boxes outlined."""
    import cv2

    if not samples:
        raise ValueError("no samples for the contact sheet")
    h, w = samples[0].image.shape[:2]
    cw, ch = w * scale, h * scale
    caption_h = 22
    pad = 6
    rows = -(-len(samples) // columns)
    sheet = np.full(
        (rows * (ch + caption_h + pad) + pad, columns * (cw + pad) + pad, 3), 255, np.uint8
    )
    for i, sample in enumerate(samples):
        r, c = divmod(i, columns)
        x, y = pad + c * (cw + pad), pad + r * (ch + caption_h + pad)
        tile = cv2.resize(sample.image, (cw, ch), interpolation=cv2.INTER_NEAREST)
        if boxes:
            for b in sample.boxes:
                cv2.rectangle(
                    tile,
                    (b.x0 * scale - 2, b.y0 * scale - 2),
                    (b.x1 * scale + scale + 1, b.y1 * scale + scale + 1),
                    _BOX_BGR.get(b.label, (0, 255, 0)),
                    1,
                )
        sheet[y : y + ch, x : x + cw] = tile
        cv2.putText(
            sheet,
            _caption(sample.labels),
            (x + 2, y + ch + 16),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return sheet
