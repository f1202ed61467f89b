"""Rasterise a seam scene on a canvas: fabric, needle holes, thread shadows, threads, lint."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge.synth.geometry import Canvas, SeamDrawing, Stroke
from edge.synth.look import Look, fabric_texture

_SHIFT = 4  # cv2 fixed-point bits: sub-pixel accurate anti-aliased lines
_ONE = 1 << _SHIFT


@dataclass
class Lint:
    """A loose fibre or speck lying on the fabric: not a defect, a distractor."""

    stroke: Stroke
    rgb: tuple[float, float, float]


def sample_lint(rng: np.random.Generator, region_mm: np.ndarray, count: int, look: Look) -> list[Lint]:
    """``count`` small fibres/specks inside the bounding box of ``region_mm`` (n, 2)."""
    lo, hi = region_mm.min(axis=0), region_mm.max(axis=0)
    out: list[Lint] = []
    for _ in range(count):
        start = rng.uniform(lo, hi)
        r = rng.random()
        if r < 0.3:
            rgb = look.thread_rgb  # a stray bit of the same thread
        elif r < 0.65:
            g = rng.uniform(0.8, 1.0)
            rgb = (g, g, g * rng.uniform(0.9, 1.0))
        else:
            rgb = tuple(float(x) for x in rng.uniform(0.0, 1.0, 3) * rng.uniform(0.2, 1.0))
        if rng.random() < 0.35:  # a speck
            pts = np.stack([start, start + rng.normal(0, 0.05, 2)])
            thick = rng.uniform(0.12, 0.3)
        else:  # a short curly fibre
            n = 8
            length = rng.uniform(0.6, 2.2)
            ang = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(0, 0.35, n))
            steps = np.stack([np.cos(ang), np.sin(ang)], axis=1) * (length / n)
            pts = start + np.vstack([[0, 0], np.cumsum(steps, axis=0)])
            thick = rng.uniform(0.06, 0.16)
        out.append(Lint(Stroke(pts, float(thick), fibre=True), rgb))
    return out


def _polyline(mask: np.ndarray, canvas: Canvas, pts_mm: np.ndarray, thickness_mm: float,
              value: int = 255) -> None:
    import cv2

    px = np.round(canvas.to_px(pts_mm) * _ONE).astype(np.int32)
    thick = max(1, int(round(thickness_mm * canvas.ppm)))
    cv2.polylines(mask, [px], False, value, thickness=thick, lineType=cv2.LINE_AA, shift=_SHIFT)


def _holes(img: np.ndarray, canvas: Canvas, holes: np.ndarray, look: Look) -> None:
    import cv2

    if holes is None or len(holes) == 0:
        return
    mask = np.zeros(img.shape[:2], np.uint8)
    px = np.round(canvas.to_px(holes) * _ONE).astype(np.int32)
    radius = max(1, int(round(0.2 * canvas.ppm * _ONE)))
    for x, y in px:
        cv2.circle(mask, (int(x), int(y)), radius, 255, -1, cv2.LINE_AA, _SHIFT)
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.5, 0.06 * canvas.ppm))
    img *= (1.0 - 0.55 * (mask.astype(np.float32) / 255.0))[..., None]


def _shadow(img: np.ndarray, canvas: Canvas, strokes: list[Stroke], look: Look) -> None:
    import cv2

    mask = np.zeros(img.shape[:2], np.uint8)
    d = np.array([math.cos(look.light_angle), math.sin(look.light_angle)])
    for st in strokes:
        offset = d * (0.12 + 0.45 * st.lift)
        _polyline(mask, canvas, st.points + offset, st.thickness * (1.15 + 0.3 * st.lift))
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.6, 0.12 * canvas.ppm))
    img *= (1.0 - look.shadow * (mask.astype(np.float32) / 255.0))[..., None]


def _threads(img: np.ndarray, canvas: Canvas, strokes: list[Stroke], look: Look) -> None:
    import cv2

    alpha = np.zeros(img.shape[:2], np.uint8)
    core = np.zeros(img.shape[:2], np.uint8)
    d = np.array([math.cos(look.light_angle), math.sin(look.light_angle)])
    for st in strokes:
        _polyline(alpha, canvas, st.points, st.thickness)
        if not st.fibre:
            pts = st.points - d * st.thickness * 0.12
            if len(pts) == 2:  # a stitch: highlight its middle, its ends dive into the fabric
                pts = pts[0] + np.array([[0.2], [0.8]]) * (pts[1] - pts[0])
            _polyline(core, canvas, pts, st.thickness * 0.35)
    core_f = cv2.GaussianBlur(core, (0, 0), max(0.5, look.thread_mm * 0.2 * canvas.ppm))
    a = alpha.astype(np.float32) / 255.0
    # twisted plies: fine diagonal stripes along every thread
    period = max(0.3, look.thread_mm * 0.9) * canvas.ppm
    ply_row = np.sin(np.arange(canvas.width + canvas.height, dtype=np.float32) * (2 * math.pi / period))
    idx = np.arange(canvas.height)[:, None] + np.arange(canvas.width)[None, :]
    ply = ply_row[idx]
    shade = 0.62 + 0.5 * (core_f.astype(np.float32) / 255.0) + 0.08 * ply
    colour = np.asarray(look.thread_rgb, np.float32) * shade[..., None]
    img *= (1.0 - a)[..., None]
    img += colour * a[..., None]


def _lint(img: np.ndarray, canvas: Canvas, lint: list[Lint]) -> None:
    """Blend each lint fibre in its own small patch (cheap on a long video strip)."""
    import cv2

    h, w = img.shape[:2]
    for item in lint:
        px = canvas.to_px(item.stroke.points)
        pad = item.stroke.thickness * canvas.ppm + 3
        x0, y0 = np.floor(px.min(axis=0) - pad).astype(int)
        x1, y1 = np.ceil(px.max(axis=0) + pad).astype(int)
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 <= x0 or y1 <= y0:
            continue
        patch = np.zeros((y1 - y0, x1 - x0), np.uint8)
        pts = np.round((px - [x0, y0]) * _ONE).astype(np.int32)
        thick = max(1, int(round(item.stroke.thickness * canvas.ppm)))
        cv2.polylines(patch, [pts], False, 255, thick, cv2.LINE_AA, _SHIFT)
        a = (patch.astype(np.float32) / 255.0)[..., None] * 0.9
        region = img[y0:y1, x0:x1]
        region *= 1.0 - a
        region += np.asarray(item.rgb, np.float32) * a


def render_canvas(canvas: Canvas, look: Look, seam: SeamDrawing, lint: list[Lint],
                  rng: np.random.Generator, mottle_cells: int = 5) -> np.ndarray:
    """The scene on ``canvas`` as float32 RGB (values around [0, 1])."""
    img = fabric_texture(look, canvas.origin, canvas.ppm, (canvas.height, canvas.width), rng,
                         mottle_cells=mottle_cells)
    _holes(img, canvas, seam.holes, look)
    _shadow(img, canvas, seam.strokes, look)
    _threads(img, canvas, seam.strokes, look)
    _lint(img, canvas, lint)
    return img
