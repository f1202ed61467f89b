"""Rasterise a seam scene on a canvas: fabric, needle holes, thread shadows, threads, lint."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pi_inspect.edge.synth.geometry import Canvas, SeamDrawing, Stroke
from pi_inspect.edge.synth.look import Look, fabric_texture

_SHIFT = 4  # cv2 fixed-point bits: sub-pixel accurate anti-aliased lines
_ONE = 1 << _SHIFT


@dataclass
class Lint:
    """A loose fibre or speck lying on the fabric: not a defect, a distractor."""

    stroke: Stroke
    rgb: tuple[float, float, float]


def sample_lint(
    rng: np.random.Generator, region_mm: np.ndarray, count: int, look: Look
) -> list[Lint]:
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


def _polyline(
    mask: np.ndarray, canvas: Canvas, pts_mm: np.ndarray, thickness_mm: float, value: int = 255
) -> None:
    import cv2

    px = np.round(canvas.to_px(pts_mm) * _ONE).astype(np.int32)
    thick = max(1, int(round(thickness_mm * canvas.ppm)))
    cv2.polylines(mask, [px], False, value, thickness=thick, lineType=cv2.LINE_AA, shift=_SHIFT)


def _roi(mask: np.ndarray, pad: int) -> tuple[slice, slice] | None:
    """Rows/columns slices around the non-zero part of ``mask`` (grown by ``pad``)."""
    import cv2

    x, y, w, h = cv2.boundingRect(mask)
    if w == 0 or h == 0:
        return None
    rows = slice(max(0, y - pad), min(mask.shape[0], y + h + pad))
    cols = slice(max(0, x - pad), min(mask.shape[1], x + w + pad))
    return rows, cols


def _darken(img: np.ndarray, mask: np.ndarray, strength: float, sigma: float) -> None:
    """``img *= 1 - strength * blur(mask)``, computed only around the mask's content."""
    import cv2

    roi = _roi(mask, int(3 * sigma) + 2)
    if roi is None:
        return
    m = cv2.GaussianBlur(mask[roi], (0, 0), sigma).astype(np.float32)
    img[roi] *= (1.0 - (strength / 255.0) * m)[..., None]


def _holes(img: np.ndarray, canvas: Canvas, holes: np.ndarray | None, strength: float) -> None:
    """Needle holes as small dark dips (faint where the thread was pulled out)."""
    import cv2

    if holes is None or len(holes) == 0:
        return
    mask = np.zeros(img.shape[:2], np.uint8)
    px = np.round(canvas.to_px(holes) * _ONE).astype(np.int32)
    radius = max(1, int(round(0.13 * canvas.ppm * _ONE)))
    for x, y in px:
        cv2.circle(mask, (int(x), int(y)), radius, 255, -1, cv2.LINE_AA, _SHIFT)
    _darken(img, mask, strength, max(0.5, 0.06 * canvas.ppm))


def _shadow(img: np.ndarray, canvas: Canvas, strokes: list[Stroke], look: Look) -> None:
    mask = np.zeros(img.shape[:2], np.uint8)
    d = np.array([math.cos(look.light_angle), math.sin(look.light_angle)])
    for st in strokes:
        # flat stitches cast a tight shadow that leaves the needle-hole gaps open; a pulled-up
        # loop or fibre casts a wider, offset one
        offset = d * (0.08 + 0.45 * st.lift)
        _polyline(mask, canvas, st.points + offset, st.thickness * (1.0 + 0.4 * st.lift))
    _darken(img, mask, look.shadow, max(0.6, 0.08 * canvas.ppm))


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
    roi = _roi(alpha, 1)
    if roi is None:
        return
    rows, cols = roi
    a = alpha[roi].astype(np.float32) * np.float32(1 / 255)
    core_f = cv2.GaussianBlur(core[roi], (0, 0), max(0.5, look.thread_mm * 0.2 * canvas.ppm))
    # twisted plies: fine diagonal stripes along every thread, sin(x + y) as two outer products
    k = 2 * math.pi / (max(0.3, look.thread_mm * 0.9) * canvas.ppm)
    ys = np.arange(rows.start, rows.stop, dtype=np.float32) * np.float32(k)
    xs = np.arange(cols.start, cols.stop, dtype=np.float32) * np.float32(k)
    ply = np.outer(np.sin(ys), np.cos(xs)) + np.outer(np.cos(ys), np.sin(xs))
    core_n = core_f.astype(np.float32) * np.float32(1 / 255)
    shade = 0.6 + 0.35 * core_n + 0.08 * ply
    colour = np.asarray(look.thread_rgb, np.float32) * shade[..., None]
    # a specular sheen on the middle of every stitch: visible even on black thread, so the
    # stitch pitch shows whatever the colours
    colour += (look.sheen * core_n)[..., None]
    region = img[roi]
    region += (colour - region) * a[..., None]


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


LINT_PER_MM2 = 2.0 / 540.0  # about two fibres/specks in a 27 x 20 mm view
MOTTLE_MM = 7.0  # size of the fabric's low-frequency unevenness


def render_canvas(
    canvas: Canvas, look: Look, seam: SeamDrawing, lint: list[Lint], rng: np.random.Generator
) -> np.ndarray:
    """The scene on ``canvas`` as float32 RGB (values around [0, 1])."""
    mottle_cells = max(2, round(max(canvas.width, canvas.height) / canvas.ppm / MOTTLE_MM))
    img = fabric_texture(
        look,
        canvas.origin,
        canvas.ppm,
        (canvas.height, canvas.width),
        rng,
        mottle_cells=mottle_cells,
    )
    _holes(img, canvas, seam.holes, 0.4)
    _holes(img, canvas, seam.empty_holes, 0.2)
    _shadow(img, canvas, seam.strokes, look)
    _threads(img, canvas, seam.strokes, look)
    _lint(img, canvas, lint)
    return img
