"""Pseudo-defects on good images: what a good-only model learns to point at.

A line makes few defects, so the anomaly model never sees a real one while it trains. It sees
good images, half of them with one generic, self-made flaw pasted in the CutPaste/DRAEM manner,
and learns a map of where the image stops looking like the good parts:

- ``cutpaste``: a patch of this or another good image (flipped or turned), pasted elsewhere;
- ``scale``: a region redrawn from a zoomed-in or zoomed-out copy of itself, so a texture's
  period changes while its look stays the same;
- ``scar``: a thin curved stroke in a colour taken from the image;
- ``smooth``: a region blurred flat, so fine structure vanishes;
- ``warp``: a smooth local displacement that bends whatever runs through it;
- ``stretch``: a region stretched or squeezed along the direction its own lines run (the
  structure tensor's), so a periodic pattern along a line changes its period while the line
  keeps its width.

Each flaw is blended in through a feathered mask, so no flaw can be found by its straight
pasted edge (a shortcut a model learns first and real defects do not have), and most are
placed where the image has structure (strong gradients): on the part, not on the background.
None of them knows what a seam is. The target map marks only the pixels the flaw visibly
changed (a patch of plain fabric pasted on plain fabric is not a defect), averaged down to the
model's map resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("cutpaste", "scale", "scar", "smooth", "warp", "stretch")
ON_STRUCTURE = 0.7  # share of flaws centred on a strong-gradient pixel
CHANGED = 24  # a pixel whose largest channel moved by this much (of 255) is visibly changed


@dataclass(frozen=True)
class PseudoConfig:
    """How big the flaws are, as fractions of the image side."""

    min_side: float = 0.08
    max_side: float = 0.35
    kinds: tuple[str, ...] = KINDS


def structure_centre(img: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    """A pixel drawn with probability growing with the local gradient energy (y, x)."""
    import cv2

    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    energy = cv2.GaussianBlur(np.abs(cv2.Laplacian(grey, cv2.CV_32F)), (0, 0), 2.0)
    p = energy.ravel() ** 2 + 1e-6
    k = int(rng.choice(len(p), p=p / p.sum()))
    return divmod(k, img.shape[1])


Centre = tuple[int, int] | None  # where a flaw sits on the image's structure; None: anywhere


def _region(
    rng: np.random.Generator, h: int, w: int, cfg: PseudoConfig, centre: Centre
) -> tuple[int, int, int, int]:
    side = min(h, w)
    ph = int(rng.uniform(cfg.min_side, cfg.max_side) * side) + 2
    pw = int(rng.uniform(cfg.min_side, cfg.max_side) * side) + 2
    if centre is None:
        y = int(rng.integers(0, h - ph + 1))
        x = int(rng.integers(0, w - pw + 1))
    else:
        y = int(np.clip(centre[0] - ph // 2, 0, h - ph))
        x = int(np.clip(centre[1] - pw // 2, 0, w - pw))
    return y, x, ph, pw


def _feather(img: np.ndarray, flawed: np.ndarray, region: np.ndarray, rng) -> np.ndarray:
    """``flawed`` blended into ``img`` through ``region`` softened by a random blur."""
    import cv2

    alpha = cv2.GaussianBlur(region.astype(np.float32), (0, 0), rng.uniform(1.0, 2.5))
    alpha = np.clip(alpha * 1.5, 0.0, 1.0)[..., None]
    out = img.astype(np.float32) * (1.0 - alpha) + flawed.astype(np.float32) * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _paste(img: np.ndarray, patch: np.ndarray, y: int, x: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """``patch`` feathered into ``img`` at (y, x), and the region it covers."""
    ph, pw = patch.shape[:2]
    out = img.copy()
    out[y : y + ph, x : x + pw] = patch
    region = np.zeros(img.shape[:2], bool)
    region[y : y + ph, x : x + pw] = True
    return _feather(img, out, region, rng), region


def _cutpaste(img: np.ndarray, donor: np.ndarray, rng, cfg, centre: Centre) -> tuple[np.ndarray, np.ndarray]:
    h, w = img.shape[:2]
    y, x, ph, pw = _region(rng, h, w, cfg, centre)
    sy = int(rng.integers(0, h - ph + 1))
    sx = int(rng.integers(0, w - pw + 1))
    patch = donor[sy : sy + ph, sx : sx + pw]
    if rng.random() < 0.5:
        patch = patch[::-1]
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    if ph == pw and rng.random() < 0.5:
        patch = np.rot90(patch)
    return _paste(img, patch, y, x, rng)


def _scale(img: np.ndarray, rng, cfg, centre: Centre) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    h, w = img.shape[:2]
    y, x, ph, pw = _region(rng, h, w, PseudoConfig(0.2, 0.5), centre)
    up = rng.random() < 0.6
    fx = rng.uniform(1.6, 2.6) if up else rng.uniform(0.35, 0.65)
    fy = fx if rng.random() < 0.5 else rng.uniform(0.8, 1.25)
    if rng.random() < 0.5:
        fx, fy = fy, fx
    # the source window, centred on the region, whose resampling fills the region
    sw, sh = max(2, int(round(pw / fx))), max(2, int(round(ph / fy)))
    cx, cy = x + pw / 2, y + ph / 2
    x0 = int(np.clip(round(cx - sw / 2), 0, max(0, w - sw)))
    y0 = int(np.clip(round(cy - sh / 2), 0, max(0, h - sh)))
    src = img[y0 : y0 + sh, x0 : x0 + sw]
    patch = cv2.resize(src, (pw, ph), interpolation=cv2.INTER_LINEAR if up else cv2.INTER_AREA)
    return _paste(img, patch, y, x, rng)


def _scar(img: np.ndarray, rng, cfg, centre: Centre) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    h, w = img.shape[:2]
    y, x, ph, pw = _region(rng, h, w, cfg, centre)
    n = int(rng.integers(3, 7))
    pts = np.stack([rng.uniform(x, x + pw, n), rng.uniform(y, y + ph, n)], axis=1)
    pts = np.round(pts * 16).astype(np.int32)
    flat = img.reshape(-1, 3)
    colour = flat[int(rng.integers(len(flat)))].astype(int)
    if rng.random() < 0.5:  # or the image's darkest or brightest tone (thread, highlights)
        lum = flat.sum(axis=1)
        colour = flat[int(np.argmin(lum) if rng.random() < 0.5 else np.argmax(lum))].astype(int)
    thick = int(rng.integers(1, 3))
    out = img.copy()
    cv2.polylines(out, [pts], False, tuple(int(c) for c in colour), thick, cv2.LINE_AA, shift=4)
    region = np.zeros((h, w), np.uint8)
    cv2.polylines(region, [pts], False, 1, thick + 2, cv2.LINE_8, shift=4)
    return out, region.astype(bool)


def _smooth(img: np.ndarray, rng, cfg, centre: Centre) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    h, w = img.shape[:2]
    y, x, ph, pw = _region(rng, h, w, cfg, centre)
    sigma = rng.uniform(2.0, 5.0)
    blurred = cv2.GaussianBlur(img, (0, 0), sigma)
    return _paste(img, blurred[y : y + ph, x : x + pw], y, x, rng)


def _warp(img: np.ndarray, rng, cfg, centre: Centre) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    h, w = img.shape[:2]
    y, x, ph, pw = _region(rng, h, w, cfg, centre)
    cy, cx = y + ph / 2, x + pw / 2
    sigma = max(ph, pw) / 3.0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bump = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    angle = rng.uniform(0, 2 * np.pi)
    amp = rng.uniform(0.25, 0.6) * sigma
    map_x = xx + amp * np.cos(angle) * bump
    map_y = yy + amp * np.sin(angle) * bump
    out = cv2.remap(
        img, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )
    return out, bump > 0.2


def line_direction(img: np.ndarray, y: int, x: int, ph: int, pw: int) -> float:
    """The angle (radians) along which the region's lines run: perpendicular to the dominant
    gradient of its structure tensor, taken after a blur that joins a dashed line into one
    stroke and smooths away a fine weave."""
    import cv2

    grey = cv2.cvtColor(img[y : y + ph, x : x + pw], cv2.COLOR_RGB2GRAY).astype(np.float32)
    grey = cv2.GaussianBlur(grey, (0, 0), 2.0)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    jxx, jyy, jxy = float((gx * gx).sum()), float((gy * gy).sum()), float((gx * gy).sum())
    return 0.5 * float(np.arctan2(2.0 * jxy, jxx - jyy)) + np.pi / 2


def _stretch(img: np.ndarray, rng, cfg, centre: Centre) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    h, w = img.shape[:2]
    y, x, ph, pw = _region(rng, h, w, PseudoConfig(0.25, 0.6), centre)
    theta = line_direction(img, y, x, ph, pw)
    f = rng.uniform(1.5, 2.5) if rng.random() < 0.7 else rng.uniform(0.4, 0.7)
    c, s = np.cos(theta), np.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    # destination -> source: squeeze (1/f) along the line direction, unchanged across it
    a = rot @ np.diag([1.0 / f, 1.0]) @ rot.T
    mid = np.array([x + pw / 2.0, y + ph / 2.0])
    m = np.hstack([a, (mid - a @ mid)[:, None]]).astype(np.float32)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    out = cv2.warpAffine(img, m, (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT)
    region = np.zeros((h, w), bool)
    region[y : y + ph, x : x + pw] = True
    return _feather(img, out, region, rng), region


def add_pseudo_defect(
    img: np.ndarray, donor: np.ndarray, rng: np.random.Generator, cfg: PseudoConfig = PseudoConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """One flaw on ``img`` (h, w, 3) uint8: the flawed image and its changed-pixel mask (h, w)."""
    import cv2

    kind = cfg.kinds[int(rng.integers(len(cfg.kinds)))]
    centre = structure_centre(img, rng) if rng.random() < ON_STRUCTURE else None
    if kind == "warp":
        out, region = _warp(img, rng, cfg, centre)
    elif kind == "cutpaste":
        out, region = _cutpaste(img, donor, rng, cfg, centre)
    elif kind == "scale":
        out, region = _scale(img, rng, cfg, centre)
    elif kind == "scar":
        out, region = _scar(img, rng, cfg, centre)
    elif kind == "stretch":
        out, region = _stretch(img, rng, cfg, centre)
    else:
        out, region = _smooth(img, rng, cfg, centre)
    diff = np.abs(out.astype(np.int16) - img.astype(np.int16)).max(axis=2).astype(np.uint8)
    changed = cv2.dilate((diff >= CHANGED).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return out, changed & region


def target_map(mask: np.ndarray, map_size: tuple[int, int]) -> np.ndarray:
    """A changed-pixel mask averaged down to the model's map (w, h): share of each cell changed."""
    import cv2

    mw, mh = map_size
    return cv2.resize(mask.astype(np.float32), (mw, mh), interpolation=cv2.INTER_AREA)


def make_batch(
    good: np.ndarray,
    rng: np.random.Generator,
    map_size: tuple[int, int],
    p_defect: float = 0.5,
    cfg: PseudoConfig = PseudoConfig(),
) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, h, w, 3) uint8 and target maps (n, mh, mw) float32 for a batch of good images:
    each gets a pseudo-defect with probability ``p_defect`` (donors: other images in ``good``)."""
    n = len(good)
    images = good.copy()
    mw, mh = map_size
    maps = np.zeros((n, mh, mw), np.float32)
    for i in range(n):
        if rng.random() < p_defect:
            donor = good[int(rng.integers(n))]
            images[i], mask = add_pseudo_defect(good[i], donor, rng, cfg)
            maps[i] = target_map(mask, map_size)
    return images, maps


def vary_contrast(
    images: np.ndarray, rng: np.random.Generator, share: float = 0.5, low: float = 0.35
) -> np.ndarray:
    """A ``share`` of ``images`` with contrast scaled into [``low``, 1.1] around each image's
    mean and a brightness shift of up to 30 levels: a dark thread on dark cloth is still a
    part, and a flaw on it must still show (the first models missed most of them)."""
    out = images.copy()
    for i in np.flatnonzero(rng.random(len(images)) < share):
        img = images[i].astype(np.float32)
        mean = img.mean(axis=(0, 1), keepdims=True)
        c, b = rng.uniform(low, 1.1), rng.uniform(-30.0, 30.0)
        out[i] = np.clip((img - mean) * c + mean + b + 0.5, 0, 255).astype(np.uint8)
    return out
