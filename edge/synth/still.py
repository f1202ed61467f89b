"""One synthetic still: sample a scene in mm, draw it, photograph it at any output size.

Image ``index`` of seed ``seed`` draws every random number from its own generator
(``SeedSequence(seed, spawn_key=(index,))``, the index-th child of ``SeedSequence(seed)``), so
it is identical whichever worker renders it and however many images are rendered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pi_inspect.edge.synth.degrade import Optics, blur_canvas, finish, light_map, sensor_noise
from pi_inspect.edge.synth.draw import LINT_PER_MM2, render_canvas, sample_lint
from pi_inspect.edge.synth.geometry import (
    BOX_MARGIN,
    CAMERA_ASPECT,
    Camera,
    Canvas,
    DefectShape,
    SeamCurve,
    draw_seam,
    make_cut,
    make_loop,
    stitch_holes,
)
from pi_inspect.edge.synth.look import Look

LABELS = ("good", "error", "break", "length")
P_ERROR, P_BREAK, P_LENGTH = 0.35, 0.35, 0.6
PITCH_MM = {True: 2.0, False: 4.0}  # length=True means the correct 2 mm pitch
HOLE_JITTER = 0.01  # each hole moves at most 1 % of the pitch
# Field of view 26-29 mm wide, seam within +-18 deg of horizontal plus at most 6 deg of curve:
# with the 4:3 camera squeezed into a square, 4 mm stitches stay >= 1.6x the 2 mm ones in px.
FOV_MM = (26.0, 29.0)
MAX_ANGLE = math.radians(18.0)
MAX_CURVE_SLOPE = math.tan(math.radians(6.0))
# The rule a person labelling ``length`` works by: the frame must show at least three intact
# stitches of the seam's pitch. A 4 mm seam with a cut and a loop in one 26 mm view can leave
# only two; such a frame is re-sampled rather than labelled by a guess.
MIN_REGULAR_IN_VIEW = 3
BREAK_GAP_MM = (7.5, 10.5)  # a cut removes 8-10 mm of thread (largest pitch is 4 mm)
SUPERSAMPLE = 2  # the output is rendered at 2x and area-averaged down
CANVAS_OVERSAMPLE = 1.5  # canvas px per output px (along the finer axis)


@dataclass(frozen=True)
class Box:
    label: str
    x0: int
    y0: int
    x1: int
    y1: int


@dataclass
class Sample:
    """A rendered still: BGR uint8 image, its four labels and a box per error/break."""

    image: np.ndarray
    labels: dict[str, bool]
    boxes: list[Box] = field(default_factory=list)
    pitch_px: tuple[float, float] = (0.0, 0.0)  # shortest and longest stitch in output px
    regular_in_view: int = 0  # intact stitches (no defect) with both holes in the frame


def make_labels(error: bool, brk: bool, length: bool) -> dict[str, bool]:
    """The seed's four attributes; ``good`` is derived, never sampled."""
    return {
        "good": (not error) and (not brk) and length,
        "error": error,
        "break": brk,
        "length": length,
    }


def image_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(index,))))


def break_span(rng: np.random.Generator, pitch: float) -> int:
    """Missing stitches of a cut: 8-10 mm of thread, and never fewer than two stitches."""
    return max(2, round(rng.uniform(*BREAK_GAP_MM) / pitch))


def _inside(box: tuple[float, float, float, float], size: tuple[int, int]) -> bool:
    w, h = size
    mx, my = BOX_MARGIN * w, BOX_MARGIN * h
    return box[0] >= mx and box[1] >= my and box[2] <= w - 1 - mx and box[3] <= h - 1 - my


def _place(
    make,
    span: int,
    candidates: np.ndarray,
    taken: list[tuple[int, int]],
    curve,
    holes,
    thread,
    camera: Camera,
    rng: np.random.Generator,
) -> DefectShape | None:
    """Try random positions until the defect's box is fully inside the frame with a margin."""
    ok = [
        k
        for k in candidates
        if k + span < len(holes) and all(k + span < a or k > b for a, b in taken)
    ]
    for _ in range(12):
        if not ok:
            return None
        k = int(ok[int(rng.integers(len(ok)))])
        shape = make(curve, holes, k, span, thread, rng)
        if _inside(shape.defect.box_px(camera), camera.size):
            return shape
    return None


def stitch_lengths_px(camera: Camera, curve: SeamCurve, holes: np.ndarray) -> np.ndarray:
    """Length in output px of every stitch whose both holes are in the frame."""
    px = camera.to_px(curve.point(holes))
    w, h = camera.size
    inside = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
    both = inside[:-1] & inside[1:]
    return np.linalg.norm(np.diff(px, axis=0), axis=1)[both]


def regular_stitches_in_view(
    camera: Camera, curve: SeamCurve, holes: np.ndarray, shapes: list[DefectShape]
) -> int:
    """How many intact stitches (part of no defect) have both their holes inside the frame."""
    px = camera.to_px(curve.point(holes))
    w, h = camera.size
    inside = (px[:, 0] >= 0) & (px[:, 0] <= w - 1) & (px[:, 1] >= 0) & (px[:, 1] <= h - 1)
    intact = inside[:-1] & inside[1:]
    for sh in shapes:
        intact[sh.first : sh.first + sh.span] = False
    return int(intact.sum())


def sample_camera(rng: np.random.Generator, size: tuple[int, int]) -> Camera:
    fov = rng.uniform(*FOV_MM)
    angle = rng.uniform(-MAX_ANGLE, MAX_ANGLE)
    fov_h = fov / CAMERA_ASPECT
    offset = rng.uniform(-0.22, 0.22) * fov_h  # where the seam crosses the image
    return Camera(size, float(fov), float(angle), (float(rng.uniform(-20, 20)), float(-offset)))


def _draw_labels(rng: np.random.Generator) -> tuple[bool, bool, bool]:
    """An image's defects (error, break, length): the first numbers its generator gives."""
    error = bool(rng.random() < P_ERROR)
    brk = bool(rng.random() < P_BREAK)
    length = bool(rng.random() < P_LENGTH)
    return error, brk, length


def is_good(seed: int, index: int) -> bool:
    """Whether image ``index`` of seed ``seed`` is good, without rendering it."""
    return make_labels(*_draw_labels(image_rng(seed, index)))["good"]


def render_still(seed: int, index: int, size: tuple[int, int] = (128, 128)) -> Sample:
    """Render image ``index`` of the data set with seed ``seed`` at ``size`` = (w, h)."""
    rng = image_rng(seed, index)
    error, brk, length = _draw_labels(rng)
    for _attempt in range(20):
        sample = _try_render(rng, size, error, brk, length)
        if sample is not None:
            return sample
    raise RuntimeError(f"could not place the defects of image {index} (seed {seed})")


def _try_render(
    rng: np.random.Generator, size: tuple[int, int], error: bool, brk: bool, length: bool
) -> Sample | None:
    import cv2

    look = Look.sample(rng)
    optics = Optics.sample(rng)
    camera = sample_camera(rng, size)
    curve = SeamCurve.sample(rng, MAX_CURVE_SLOPE)
    ppm = CANVAS_OVERSAMPLE * max(camera.ppm)
    corners = camera.corners_mm(pad_px=2)
    canvas = Canvas.covering(corners, ppm, margin_mm=1.0)
    pitch = PITCH_MM[length]
    u_lo = canvas.origin[0] - pitch - rng.uniform(0, pitch)
    u_hi = canvas.origin[0] + canvas.width / ppm + pitch
    holes = stitch_holes(u_lo, u_hi, lambda _u: pitch, rng, HOLE_JITTER)
    hole_px = camera.to_px(curve.point(holes))
    w, h = size
    candidates = np.flatnonzero(
        (hole_px[:, 0] > 0) & (hole_px[:, 0] < w) & (hole_px[:, 1] > 0) & (hole_px[:, 1] < h)
    )
    shapes: list[DefectShape] = []
    taken: list[tuple[int, int]] = []
    if brk:
        span = break_span(rng, pitch)
        shape = _place(make_cut, span, candidates, taken, curve, holes, look.thread_mm, camera, rng)
        if shape is None:
            return None
        shapes.append(shape)
        taken.append((shape.first, shape.first + shape.span))
    if error:
        span = int(rng.integers(1, 3)) if length else 1
        shape = _place(
            make_loop, span, candidates, taken, curve, holes, look.thread_mm, camera, rng
        )
        if shape is None:
            return None
        shapes.append(shape)
    regular = regular_stitches_in_view(camera, curve, holes, shapes)
    if regular < MIN_REGULAR_IN_VIEW:
        return None
    drawing = draw_seam(curve, holes, look.thread_mm, look.hole_gap, shapes)
    view_mm2 = camera.fov_mm**2 / CAMERA_ASPECT
    lint = sample_lint(rng, corners, int(rng.poisson(LINT_PER_MM2 * view_mm2)), look)
    img = render_canvas(canvas, look, drawing, lint, rng)
    img = blur_canvas(img, optics, ppm)
    m = canvas.warp_to(camera, SUPERSAMPLE)
    big = cv2.warpAffine(
        img,
        m,
        (w * SUPERSAMPLE, h * SUPERSAMPLE),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )
    small = cv2.cvtColor(cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)
    bgr = finish(
        small, light_map(optics, size), sensor_noise(optics, small.shape, rng), optics.jpeg_quality
    )
    boxes = []
    for sh in shapes:
        x0, y0, x1, y1 = sh.defect.box_px(camera)
        boxes.append(
            Box(
                sh.defect.label,
                max(0, math.floor(x0)),
                max(0, math.floor(y0)),
                min(w - 1, math.ceil(x1)),
                min(h - 1, math.ceil(y1)),
            )
        )
    lengths = stitch_lengths_px(camera, curve, holes)
    pitch_px = (float(lengths.min()), float(lengths.max())) if len(lengths) else (0.0, 0.0)
    return Sample(bgr, make_labels(error, brk, length), boxes, pitch_px, regular)
