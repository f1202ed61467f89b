"""Appearance of one scene: fabric weave and colour, thread colour and thickness, lint.

Colours are RGB floats in [0, 1]. The fabric is a procedural weave evaluated at each canvas
pixel's mm coordinate, so it looks the same at every output size.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

WEAVES = ("plain", "twill", "knit")


def luminance(rgb: tuple[float, float, float] | np.ndarray) -> float:
    r, g, b = rgb
    return 0.299 * r + 0.587 * g + 0.114 * b


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    return colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1)))


@dataclass(frozen=True)
class Look:
    """Everything about the scene's appearance that is not geometry or optics."""

    weave: str
    weave_pitch: float  # mm between yarns
    weave_angle: float  # radians, relative to the seam
    weave_contrast: float
    fabric_rgb: tuple[float, float, float]
    fabric_rgb2: tuple[float, float, float]  # the crossing yarn's colour
    yarn_var: float  # yarn-to-yarn brightness variation
    waviness: float  # mm the yarns wander off straight lines
    mottle: float  # low-frequency unevenness
    grain: float  # per-pixel fibre noise
    thread_rgb: tuple[float, float, float]
    thread_mm: float  # thread thickness
    hole_gap: float  # mm of fabric visible where the thread dives into a needle hole
    sheen: float  # specular highlight on the thread
    light_angle: float  # direction the shadows fall, radians in the seam frame
    shadow: float  # shadow strength
    low_contrast: bool

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Look:
        weave = WEAVES[int(rng.choice(3, p=[0.45, 0.3, 0.25]))]
        h = rng.random()
        s = rng.uniform(0.0, 0.75) if rng.random() < 0.8 else rng.uniform(0.0, 0.12)
        v = rng.uniform(0.25, 0.95)
        fabric = _hsv(h, s, v)
        fabric2 = _hsv(
            h + rng.normal(0, 0.03), s * rng.uniform(0.7, 1.2), v * rng.uniform(0.8, 1.1)
        )
        if rng.random() < 0.1:  # two-colour weave (chambray-like)
            fabric2 = _hsv(rng.random(), rng.uniform(0, 0.5), v * rng.uniform(0.6, 1.2))
        low_contrast = bool(rng.random() < 0.35)
        thread = _thread_colour(fabric, low_contrast, rng)
        weave_pitch = float(rng.uniform(0.35, 0.85))
        weave_angle = float(rng.normal(0, 0.06) + (math.pi / 4 if rng.random() < 0.08 else 0))
        weave_contrast, yarn_var, fabric2 = _texture_under_thread(
            fabric, fabric2, thread, float(rng.uniform(0.1, 0.35)), float(rng.uniform(0.0, 0.15))
        )
        return cls(
            weave=weave,
            weave_pitch=weave_pitch,
            weave_angle=weave_angle,
            weave_contrast=weave_contrast,
            fabric_rgb=fabric,
            fabric_rgb2=fabric2,
            yarn_var=yarn_var,
            waviness=float(rng.uniform(0.0, 0.35)),
            mottle=float(rng.uniform(0.0, 0.12)),
            grain=float(rng.uniform(0.01, 0.06)),
            thread_rgb=thread,
            thread_mm=float(rng.uniform(0.35, 0.6)),
            hole_gap=float(rng.uniform(0.45, 0.75)),
            sheen=float(rng.uniform(0.1, 0.3)),
            light_angle=float(rng.uniform(0, 2 * math.pi)),
            shadow=float(rng.uniform(0.25, 0.55)),
            low_contrast=low_contrast,
        )


# The weave's own light-dark swing stays below this share of the thread's contrast: a faint
# thread is hard to see, but a person can still follow it (and count its stitches) through the
# weave. Without it a low-contrast thread on a bold twill vanished and ``length`` became a guess.
TEXTURE_UNDER_THREAD = 0.8


def texture_swing(
    fabric: tuple[float, float, float],
    fabric2: tuple[float, float, float],
    weave_contrast: float,
    yarn_var: float,
) -> float:
    """Peak-to-peak luminance of the weave: its shading plus the two yarn colours' difference."""
    lf = luminance(fabric)
    return lf * (weave_contrast + yarn_var) + abs(luminance(fabric2) - lf)


def _texture_under_thread(
    fabric: tuple[float, float, float],
    fabric2: tuple[float, float, float],
    thread: tuple[float, float, float],
    weave_contrast: float,
    yarn_var: float,
) -> tuple[float, float, tuple[float, float, float]]:
    """Tone the weave down (shading, yarn variation and the crossing yarn's colour alike) until
    the thread stands out of it; returns (weave_contrast, yarn_var, fabric2)."""
    swing = texture_swing(fabric, fabric2, weave_contrast, yarn_var)
    limit = TEXTURE_UNDER_THREAD * abs(luminance(thread) - luminance(fabric))
    if swing <= limit or swing <= 0:
        return weave_contrast, yarn_var, fabric2
    k = limit / swing
    toned = tuple(float(a + k * (b - a)) for a, b in zip(fabric, fabric2, strict=True))
    return weave_contrast * k, yarn_var * k, toned  # type: ignore[return-value]


def _thread_colour(
    fabric: tuple[float, float, float], low_contrast: bool, rng: np.random.Generator
) -> tuple[float, float, float]:
    """A thread colour either clearly contrasting or close to the fabric (but not invisible)."""
    lf = luminance(fabric)
    fh, fs, fv = colorsys.rgb_to_hsv(*fabric)
    for _ in range(64):
        if low_contrast:
            sign = rng.choice([-1.0, 1.0]) if 0.3 < fv < 0.8 else (1.0 if fv <= 0.3 else -1.0)
            cand = _hsv(
                fh + rng.normal(0, 0.04),
                fs * rng.uniform(0.6, 1.3),
                fv + sign * rng.uniform(0.12, 0.25),
            )
            if 0.1 <= abs(luminance(cand) - lf) <= 0.25:
                return cand
        else:
            palette = rng.random()
            if palette < 0.3:  # white / black / grey thread
                cand = _hsv(
                    0,
                    rng.uniform(0, 0.08),
                    rng.choice([rng.uniform(0.05, 0.2), rng.uniform(0.85, 1.0)]),
                )
            else:
                cand = _hsv(rng.random(), rng.uniform(0.3, 1.0), rng.uniform(0.2, 1.0))
            if abs(luminance(cand) - lf) >= 0.28:
                return cand
    return (1.0, 1.0, 1.0) if lf < 0.5 else (0.05, 0.05, 0.05)


def _noise_field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth random field in [-1, 1] (bicubic upsampling of a coarse random grid)."""
    import cv2

    h, w = shape
    gw = max(2, int(round(cells * w / max(h, w))) + 1)
    gh = max(2, int(round(cells * h / max(h, w))) + 1)
    coarse = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


_TILE_YARNS = 16  # the weave tile repeats every 16 yarns (several mm): no visible period
_TILE_PX_PER_YARN = 8
WAVE_MM = 5.0  # size of the yarns' gentle waviness


def _weave_tile(look: Look, rng: np.random.Generator) -> np.ndarray:
    """One periodic tile of the weave: channel 0 = brightness, 1 = which yarn is on top."""
    n = _TILE_YARNS * _TILE_PX_PER_YARN
    coords = (np.arange(n, dtype=np.float32) + 0.5) / _TILE_PX_PER_YARN
    a, b = np.meshgrid(coords, coords)  # a across warp yarns (columns), b across weft
    ia, ib = np.floor(a), np.floor(b)
    fa, fb = a - ia, b - ib
    pa, pb = np.sin(np.pi * fa), np.sin(np.pi * fb)
    if look.weave == "knit":
        # wales of V-shaped loops: each column is a chain of chevrons
        phase = fb * 0.5 + 0.9 * np.abs(fa - 0.5)
        shade = (0.5 + 0.5 * np.cos(2 * np.pi * phase)) * np.sqrt(pa)
        over = (ia % 2) == 0
    else:  # plain: alternate over/under; 2/2 twill: diagonal ribs
        over = ((ia + ib) % 2) == 0 if look.weave == "plain" else ((ia + ib) % 4) < 2
        shade = np.where(over, pa * (0.6 + 0.4 * pb), pb * (0.6 + 0.4 * pa))
    # every yarn a little lighter or darker than its neighbours
    warp_var = rng.uniform(-0.5, 0.5, _TILE_YARNS).astype(np.float32)
    weft_var = rng.uniform(-0.5, 0.5, _TILE_YARNS).astype(np.float32)
    yarn = np.where(over, warp_var[ia.astype(int)], weft_var[ib.astype(int)])
    grey = look.weave_contrast * (shade - 0.5) + look.yarn_var * yarn
    # fibre grain baked into the tile (it repeats every 16 yarns, invisible under the weave)
    grey = grey + look.grain * rng.standard_normal(grey.shape, dtype=np.float32)
    return np.dstack([grey, over.astype(np.float32)]).astype(np.float32)


_REMAP_MAX = 16384  # columns per cv2.remap call (it asserts dst.cols < SHRT_MAX)


def fabric_texture(
    look: Look,
    canvas_origin: tuple[float, float],
    canvas_ppm: float,
    shape: tuple[int, int],
    rng: np.random.Generator,
    mottle_cells: int = 5,
) -> np.ndarray:
    """RGB float32 fabric for a canvas of ``shape`` (h, w) whose pixel (0, 0) is at
    ``canvas_origin`` mm and which has ``canvas_ppm`` pixels per mm.

    The weave is one periodic tile mapped onto the canvas by a wrapping remap (rotation and
    scale in mm plus a gentle waviness), several times cheaper than evaluating it per pixel.
    """
    import cv2

    tile = _weave_tile(look, rng)
    h, w = shape
    c, s = math.cos(look.weave_angle), math.sin(look.weave_angle)
    k = _TILE_PX_PER_YARN / look.weave_pitch  # tile px per mm
    # canvas px -> mm -> tile px, with a smooth displacement so yarns are not ruler-straight
    rot = np.array([[c, s], [-s, c]], dtype=np.float32) * np.float32(k / canvas_ppm)
    off = np.array([[c, s], [-s, c]]) @ np.asarray(canvas_origin) * k
    cells = max(2, round(max(h, w) / canvas_ppm / WAVE_MM))
    amp = np.float32(look.waviness * canvas_ppm)
    xs = np.arange(w, dtype=np.float32)[None, :] + amp * _noise_field(rng, (h, w), cells)
    ys = np.arange(h, dtype=np.float32)[:, None] + amp * _noise_field(rng, (h, w), cells)
    map_x = rot[0, 0] * xs + rot[0, 1] * ys + np.float32(off[0])
    map_y = rot[1, 0] * xs + rot[1, 1] * ys + np.float32(off[1])
    n = tile.shape[0]
    map_x %= n  # remap's wrap border is per pixel; keep the maps inside one tile instead
    map_y %= n
    # remap takes at most SHRT_MAX columns; a long video strip is remapped in slices
    pattern = np.concatenate(
        [
            cv2.remap(tile, map_x[:, i : i + _REMAP_MAX], map_y[:, i : i + _REMAP_MAX],
                      cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
            for i in range(0, w, _REMAP_MAX)
        ],
        axis=1,
    )
    grey = pattern[..., 0]
    grey += 1.0
    grey += look.mottle * _noise_field(rng, (h, w), mottle_cells)
    col1 = np.asarray(look.fabric_rgb, dtype=np.float32)
    col2 = np.asarray(look.fabric_rgb2, dtype=np.float32)
    base = pattern[..., 1:2] * (col1 - col2)
    base += col2
    base *= grey[..., None]
    return base
