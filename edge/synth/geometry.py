"""Seam geometry in millimetres: the camera, the drawing canvas, stitch holes and defect strokes.

Everything is laid out in the *seam frame*: ``u`` runs along the seam, ``v`` across it, both
in mm. A :class:`Camera` maps that frame to output pixels, so the same scene can be rendered
at any output size; a :class:`Canvas` is the supersampled raster the scene is drawn on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# The camera sees a 4:3 field of view whatever the output size, as a USB camera does: a square
# still is a camera frame resized to a square, exactly what the data pipeline does to video.
CAMERA_ASPECT = 4.0 / 3.0
# Margin that keeps a defect box away from the image border (fraction of the image size).
BOX_MARGIN = 0.04


@dataclass(frozen=True)
class Camera:
    """Maps seam-frame mm to output pixels (pixel centres at integer coordinates)."""

    size: tuple[int, int]  # output (width, height) in px
    fov_mm: float  # width of the field of view in mm
    angle: float  # direction of the seam's u axis in the image plane, radians
    centre: tuple[float, float]  # seam-frame point (mm) at the image centre

    @property
    def ppm(self) -> tuple[float, float]:
        """Pixels per mm along x and y (differ when the output is not 4:3)."""
        w, h = self.size
        return w / self.fov_mm, h / (self.fov_mm / CAMERA_ASPECT)

    def matrix(self) -> np.ndarray:
        """2x3 affine matrix from seam-frame mm to output px."""
        sx, sy = self.ppm
        c, s = math.cos(self.angle), math.sin(self.angle)
        lin = np.array([[sx * c, -sx * s], [sy * s, sy * c]])
        w, h = self.size
        t = np.array([(w - 1) / 2.0, (h - 1) / 2.0]) - lin @ np.asarray(self.centre)
        return np.hstack([lin, t[:, None]])

    def to_px(self, pts_mm: np.ndarray) -> np.ndarray:
        m = self.matrix()
        return np.asarray(pts_mm, dtype=np.float64) @ m[:, :2].T + m[:, 2]

    def corners_mm(self, pad_px: float = 0.0) -> np.ndarray:
        """The output image's four corners (padded outward by ``pad_px``) in seam-frame mm."""
        w, h = self.size
        m = self.matrix()
        px = np.array(
            [
                [-pad_px, -pad_px],
                [w + pad_px, -pad_px],
                [w + pad_px, h + pad_px],
                [-pad_px, h + pad_px],
            ],
            dtype=np.float64,
        )
        return (px - m[:, 2]) @ np.linalg.inv(m[:, :2]).T


@dataclass(frozen=True)
class Canvas:
    """A raster in the seam frame: pixel (col, row) centre = origin + (col, row) / ppm."""

    origin: tuple[float, float]
    ppm: float
    width: int
    height: int

    @classmethod
    def covering(cls, pts_mm: np.ndarray, ppm: float, margin_mm: float = 1.0) -> Canvas:
        lo = pts_mm.min(axis=0) - margin_mm
        hi = pts_mm.max(axis=0) + margin_mm
        width, height = (np.ceil((hi - lo) * ppm).astype(int) + 1).tolist()
        return cls((float(lo[0]), float(lo[1])), float(ppm), int(width), int(height))

    def to_px(self, pts_mm: np.ndarray) -> np.ndarray:
        return (np.asarray(pts_mm, dtype=np.float64) - self.origin) * self.ppm

    def grid_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """(u, v) mm of every pixel centre, float32, shape (height, width)."""
        u = (self.origin[0] + np.arange(self.width, dtype=np.float32) / self.ppm).astype(np.float32)
        v = (self.origin[1] + np.arange(self.height, dtype=np.float32) / self.ppm).astype(
            np.float32
        )
        return np.broadcast_to(u[None, :], (self.height, self.width)), np.broadcast_to(
            v[:, None], (self.height, self.width)
        )

    def warp_to(self, camera: Camera, supersample: int = 1) -> np.ndarray:
        """2x3 matrix from canvas px to output px (of an output ``supersample`` times larger)."""
        m = camera.matrix()
        lin = m[:, :2] / self.ppm
        t = m[:, :2] @ np.asarray(self.origin) + m[:, 2]
        out = np.hstack([lin, t[:, None]]) * supersample
        out[:, 2] += (supersample - 1) / 2.0
        return out


@dataclass(frozen=True)
class SeamCurve:
    """The seam's centre line v(u): a gentle sum of sinusoids whose slope stays bounded."""

    offset: float = 0.0
    amps: tuple[float, ...] = ()
    wavelengths: tuple[float, ...] = ()
    phases: tuple[float, ...] = ()

    @classmethod
    def sample(cls, rng: np.random.Generator, max_slope: float, offset: float = 0.0) -> SeamCurve:
        n = 2
        wavelengths = tuple(float(x) for x in rng.uniform(35.0, 140.0, n))
        share = rng.dirichlet(np.ones(n)) * rng.uniform(0.0, max_slope)
        amps = tuple(
            float(s * lam / (2 * math.pi)) for s, lam in zip(share, wavelengths, strict=True)
        )
        phases = tuple(float(x) for x in rng.uniform(0, 2 * math.pi, n))
        return cls(offset, amps, wavelengths, phases)

    def v(self, u: np.ndarray | float) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        out = np.full_like(u, self.offset)
        for a, lam, ph in zip(self.amps, self.wavelengths, self.phases, strict=True):
            out = out + a * np.sin(2 * math.pi * u / lam + ph)
        return out

    def point(self, u: np.ndarray | float) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        return np.stack([u, self.v(u)], axis=-1)

    def normal(self, u: float) -> np.ndarray:
        """Unit normal (pointing to +v) of the curve at ``u``."""
        slope = 0.0
        for a, lam, ph in zip(self.amps, self.wavelengths, self.phases, strict=True):
            slope += a * 2 * math.pi / lam * math.cos(2 * math.pi * u / lam + ph)
        n = np.array([-slope, 1.0])
        return n / np.linalg.norm(n)


@dataclass
class Stroke:
    """A thread drawn as a polyline: ``lift`` 0 lies on the fabric, 1 is pulled up (bigger shadow)."""

    points: np.ndarray  # (n, 2) mm
    thickness: float  # mm
    lift: float = 0.0
    fibre: bool = False  # a thin fibre (fray, lint): no highlight


@dataclass
class Defect:
    """One ``error`` or ``break`` and the mm points that bound it."""

    label: str
    points: np.ndarray  # (n, 2) mm, including the thread's half thickness

    def box_px(self, camera: Camera) -> tuple[float, float, float, float]:
        px = camera.to_px(self.points)
        return (
            float(px[:, 0].min()),
            float(px[:, 1].min()),
            float(px[:, 0].max()),
            float(px[:, 1].max()),
        )


@dataclass
class SeamDrawing:
    """Everything drawn for one seam: threads, empty needle holes, defects."""

    strokes: list[Stroke] = field(default_factory=list)
    holes: np.ndarray | None = None  # (n, 2) mm of needle holes the thread dives into
    empty_holes: np.ndarray | None = None  # (n, 2) mm of holes left by pulled-out thread
    defects: list[Defect] = field(default_factory=list)


def stitch_holes(
    u_start: float, u_end: float, pitch_at, rng: np.random.Generator, jitter: float
) -> np.ndarray:
    """Needle-hole u positions from ``u_start`` to ``u_end``; ``pitch_at(u)`` gives the pitch.

    Each hole is displaced by at most ``jitter`` x pitch (feed irregularity), bounded so the
    two pitch classes never overlap.
    """
    us = []
    u = u_start
    while u <= u_end:
        us.append(u)
        u += pitch_at(u)
    us = np.asarray(us)
    pitches = np.array([pitch_at(x) for x in us])
    return us + rng.uniform(-jitter, jitter, len(us)) * pitches


def _outline(points: np.ndarray, half: float) -> np.ndarray:
    """Points plus a square of half-width ``half`` around each (a conservative thread outline)."""
    offs = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
    return (points[:, None, :] + offs[None]).reshape(-1, 2)


def loop_stroke(
    curve: SeamCurve, u_a: float, u_b: float, thread: float, rng: np.random.Generator
) -> tuple[Stroke, np.ndarray]:
    """An ``error``: the thread between two holes pulled sideways into an arc or loop.

    The thread leaves hole A, bulges 2-4.5 mm off the seam line (the seam itself is < 1 mm
    wide) and returns at hole B; with a large ``omega`` it overshoots both holes and the
    shape becomes a closed-looking loop.
    """
    a, b = curve.point(u_a), curve.point(u_b)
    chord = b - a
    length = float(np.linalg.norm(chord))
    along = chord / length
    normal = np.array([-along[1], along[0]]) * rng.choice([-1.0, 1.0])
    tilt = rng.uniform(-0.5, 0.5)
    across = normal * math.cos(tilt) + along * math.sin(tilt)
    depth = rng.uniform(2.0, 4.5)
    # omega > length / (2 pi) overshoots both holes: an open arc becomes a loop
    omega = rng.uniform(0.1, 0.45) * max(length, 2.5) if rng.random() < 0.7 else 0.0
    power = rng.uniform(0.7, 1.4)
    s = np.linspace(0.0, 1.0, 48)
    wobble = 0.12 * depth * np.sin(2 * math.pi * (rng.uniform(1, 2.5) * s + rng.uniform(0, 1)))
    d_along = length * s - omega * np.sin(2 * math.pi * s)
    d_across = depth * np.sin(math.pi * s) ** power + wobble * np.sin(math.pi * s)
    # tilt and wobble change how far the loop reaches: rescale so it stands exactly ``depth``
    # off the seam line, never less
    reach = float(np.max(np.abs(d_across * float(across @ normal))))
    d_across *= depth / max(reach, 1e-6)
    pts = a + d_along[:, None] * along + d_across[:, None] * across
    stroke = Stroke(pts, thread * rng.uniform(0.9, 1.1), lift=1.0)
    return stroke, _outline(pts, thread / 2)


def fray(
    end: np.ndarray, direction: np.ndarray, thread: float, rng: np.random.Generator
) -> tuple[list[Stroke], np.ndarray]:
    """A cut thread end: a short stub then 2-4 thin fibres splaying out, at ``end``."""
    strokes: list[Stroke] = []
    stub_len = rng.uniform(0.3, 1.0)
    bend = rng.uniform(-0.5, 0.5)
    d_stub = np.array(
        [
            math.cos(bend) * direction[0] - math.sin(bend) * direction[1],
            math.sin(bend) * direction[0] + math.cos(bend) * direction[1],
        ]
    )
    stub_end = end + d_stub * stub_len
    strokes.append(Stroke(np.stack([end, stub_end]), thread * 0.85, lift=0.4))
    pts = [end, stub_end]
    base = math.atan2(d_stub[1], d_stub[0])
    for _ in range(int(rng.integers(2, 5))):
        ang = base + rng.uniform(-0.9, 0.9)
        length = rng.uniform(0.5, 1.4) * max(thread, 0.4) * 2.2
        curl = rng.uniform(-0.6, 0.6)
        t = np.linspace(0, 1, 6)[:, None]
        angs = ang + curl * t
        steps = np.concatenate([np.cos(angs), np.sin(angs)], axis=1) * (length / 5)
        fib = stub_end + np.vstack([[0, 0], np.cumsum(steps[1:], axis=0)])
        strokes.append(Stroke(fib, thread * rng.uniform(0.25, 0.4), lift=0.6, fibre=True))
        pts.extend(fib)
    return strokes, _outline(np.asarray(pts), thread / 2)


@dataclass
class DefectShape:
    """A placed defect: the stitches it replaces (``first``..``first+span``) and its threads."""

    first: int
    span: int
    strokes: list[Stroke]
    defect: Defect


def make_loop(
    curve: SeamCurve, holes: np.ndarray, k: int, span: int, thread: float, rng: np.random.Generator
) -> DefectShape:
    """An ``error`` replacing ``span`` stitches from hole ``k``."""
    stroke, outline = loop_stroke(curve, holes[k], holes[k + span], thread, rng)
    return DefectShape(k, span, [stroke], Defect("error", outline))


def make_cut(
    curve: SeamCurve, holes: np.ndarray, k: int, span: int, thread: float, rng: np.random.Generator
) -> DefectShape:
    """A ``break``: ``span`` stitches from hole ``k`` missing, frayed ends at both holes."""
    pts = curve.point(holes[[k, k + span]])
    along = (pts[1] - pts[0]) / np.linalg.norm(pts[1] - pts[0])
    s1, o1 = fray(pts[0], along, thread, rng)
    s2, o2 = fray(pts[1], -along, thread, rng)
    return DefectShape(
        k, span, s1 + s2, Defect("break", np.vstack([o1, o2, _outline(pts, thread / 2)]))
    )


def draw_seam(
    curve: SeamCurve, holes_u: np.ndarray, thread: float, hole_gap: float, shapes: list[DefectShape]
) -> SeamDrawing:
    """Straight stitches between consecutive holes, except where a defect replaces them."""
    out = SeamDrawing()
    skip: set[int] = set()
    for sh in shapes:
        out.strokes.extend(sh.strokes)
        out.defects.append(sh.defect)
        skip.update(range(sh.first, sh.first + sh.span))
    hole_pts = curve.point(holes_u)
    # cv2 draws thick lines with round caps: shorten by half the thickness too, so the
    # visible gap at each needle hole is ``hole_gap``
    half_gap = (hole_gap + thread) / 2
    for k in range(len(holes_u) - 1):
        if k in skip:
            continue
        a, b = hole_pts[k], hole_pts[k + 1]
        d = b - a
        n = float(np.linalg.norm(d))
        if n <= hole_gap:
            continue
        d /= n
        out.strokes.append(Stroke(np.stack([a + d * half_gap, b - d * half_gap]), thread))
    empty = np.zeros(len(holes_u), bool)
    for sh in shapes:
        if sh.defect.label == "break":
            empty[sh.first + 1 : sh.first + sh.span] = True
    out.holes, out.empty_holes = hole_pts[~empty], hole_pts[empty]
    return out
