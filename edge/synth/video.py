"""A synthetic seam video: fabric sliding under a fixed camera, with per-frame ground truth.

The scene is the stills' scene (same look, optics and camera distribution, same renderer),
drawn once as a long strip along the seam; each frame is a crop of the strip at the camera's
position plus fresh sensor noise and JPEG, so a model trained on the stills works on it and
450 frames render in a few seconds.

Along the seam: clean 2 mm stitching with, one at a time, an ``error`` loop, a ``break`` or a
4 mm segment (the wrong-length alarm), each separated by >= 1.5 frame widths of clean seam.

Sidecars next to ``FILE.mp4``: ``FILE.truth.csv`` (``frame,good,error,break,length``; a
defect counts in a frame when its box is fully inside it; ``length`` is False when 4 mm
stitching covers at least half of the visible seam) and ``FILE.occurrences.csv``
(``id,label,first_frame,last_frame`` for every error, break and 4 mm segment).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pi_inspect.edge.errors import DataError, PiInspectError
from pi_inspect.edge.synth.degrade import NoiseBank, Optics, blur_canvas, finish, light_map
from pi_inspect.edge.synth.draw import LINT_PER_MM2, render_canvas, sample_lint
from pi_inspect.edge.synth.geometry import (
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
from pi_inspect.edge.synth.still import (
    HOLE_JITTER,
    LABELS,
    MAX_CURVE_SLOPE,
    PITCH_MM,
    break_span,
    sample_camera,
)

FRAMES_PER_WIDTH = 26  # the fabric advances one frame width every 26 frames
CLEAN_GAP_WIDTHS = (1.5, 2.2)  # clean seam between consecutive occurrences, in frame widths
LONG_PITCH_WIDTHS = (1.0, 1.5)  # length of a 4 mm segment, in frame widths
_VIDEO_STREAM = 1 << 31  # spawn key of the video's generator (stills use their index)


@dataclass(frozen=True)
class Occurrence:
    id: int
    label: str  # "error", "break" or "length" (a 4 mm segment)
    first_frame: int
    last_frame: int


@dataclass(frozen=True)
class VideoTruth:
    """Ground truth of a rendered video: ``labels[frame]`` is a bool row in ``LABELS`` order."""

    path: Path
    labels: np.ndarray  # (frames, 4) bool: good, error, break, length
    occurrences: tuple[Occurrence, ...]
    fps: float = 0.0
    size: tuple[int, int] = (0, 0)

    @property
    def frames(self) -> int:
        return len(self.labels)

    def frame_labels(self, frame: int) -> dict[str, bool]:
        return {k: bool(v) for k, v in zip(LABELS, self.labels[frame], strict=True)}


def sidecar_paths(path: str | Path) -> tuple[Path, Path]:
    """``(FILE.truth.csv, FILE.occurrences.csv)`` next to the video ``FILE.mp4``."""
    p = Path(path)
    return p.with_name(p.stem + ".truth.csv"), p.with_name(p.stem + ".occurrences.csv")


@dataclass
class _Plan:
    """Where things are along the seam (u, mm)."""

    long_pitch: list[tuple[float, float]]  # 4 mm segments [u0, u1)
    errors: list[float]
    breaks: list[float]

    def pitch_at(self, u: float) -> float:
        return PITCH_MM[not any(a <= u < b for a, b in self.long_pitch)]


def _plan(rng: np.random.Generator, u_first: float, u_last: float, width: float) -> _Plan:
    """Occurrences in a shuffled error/break/length cycle, separated by clean seam."""
    plan = _Plan([], [], [])
    u = u_first + width * rng.uniform(0.6, 0.9)  # the first frames show clean seam
    order: list[str] = []
    while True:
        if not order:
            order = [str(x) for x in rng.permutation(["error", "break", "length"])]
        kind = order.pop()
        if kind == "length":
            seg = width * rng.uniform(*LONG_PITCH_WIDTHS)
            if u + seg > u_last:
                break
            plan.long_pitch.append((u, u + seg))
            u += seg
        else:
            extent = 12.0 if kind == "break" else 5.0
            if u + extent > u_last:
                break
            (plan.breaks if kind == "break" else plan.errors).append(u)
            u += extent
        u += width * rng.uniform(*CLEAN_GAP_WIDTHS)
    return plan


def _defects(
    plan: _Plan, curve: SeamCurve, holes: np.ndarray, thread: float, rng: np.random.Generator
) -> list[DefectShape]:
    shapes = []
    for u in plan.errors:
        k = int(np.searchsorted(holes, u))
        shapes.append(make_loop(curve, holes, k, int(rng.integers(1, 3)), thread, rng))
    for u in plan.breaks:
        k = int(np.searchsorted(holes, u))
        span = break_span(rng, PITCH_MM[True])
        shapes.append(make_cut(curve, holes, k, span, thread, rng))
    return shapes


def _camera_at(base: Camera, u: float) -> Camera:
    return Camera(base.size, base.fov_mm, base.angle, (u, base.centre[1]))


def _truth(
    base: Camera, centres: np.ndarray, shapes: list[DefectShape], plan: _Plan, curve: SeamCurve
) -> tuple[np.ndarray, list[Occurrence]]:
    w, h = base.size
    n = len(centres)
    inside = {}
    for i, sh in enumerate(shapes):
        px0 = base.to_px(sh.defect.points)  # at centre u = base.centre[0]
        shift = base.matrix()[:, 0]  # px per mm of camera movement along u (negated below)
        flags = np.zeros(n, bool)
        for f, cu in enumerate(centres):
            px = px0 - shift * (cu - base.centre[0])
            flags[f] = (
                px[:, 0].min() >= 0
                and px[:, 1].min() >= 0
                and px[:, 0].max() <= w - 1
                and px[:, 1].max() <= h - 1
            )
        inside[i] = flags
    long_cover = np.zeros((len(plan.long_pitch), n))
    for f, cu in enumerate(centres):
        cam = _camera_at(base, float(cu))
        us = np.arange(cu - base.fov_mm, cu + base.fov_mm, 0.25)
        px = cam.to_px(curve.point(us))
        vis = us[(px[:, 0] >= 0) & (px[:, 0] <= w - 1) & (px[:, 1] >= 0) & (px[:, 1] <= h - 1)]
        for j, (a, b) in enumerate(plan.long_pitch):
            long_cover[j, f] = np.mean((vis >= a) & (vis < b)) if len(vis) else 0.0
    error = np.zeros(n, bool)
    brk = np.zeros(n, bool)
    events: list[tuple[int, str, np.ndarray]] = []
    for i, sh in enumerate(shapes):
        (error if sh.defect.label == "error" else brk)[:] |= inside[i]
        events.append(
            (int(np.argmax(inside[i])) if inside[i].any() else n, sh.defect.label, inside[i])
        )
    wrong_length = long_cover >= 0.5
    for j in range(len(plan.long_pitch)):
        flags = wrong_length[j]
        events.append((int(np.argmax(flags)) if flags.any() else n, "length", flags))
    length = ~wrong_length.any(axis=0)
    good = ~error & ~brk & length
    labels = np.stack([good, error, brk, length], axis=1)
    occurrences = []
    for _first, label, flags in sorted(events, key=lambda e: e[0]):
        if not flags.any():
            continue  # scrolled past before (or after) the video: not an occurrence
        frames = np.flatnonzero(flags)
        occurrences.append(Occurrence(len(occurrences) + 1, label, int(frames[0]), int(frames[-1])))
    return labels, occurrences


def render_video(
    path: str | Path,
    frames: int = 450,
    seed: int = 0,
    size: tuple[int, int] = (320, 240),
    fps: float = 15.0,
) -> VideoTruth:
    """Render an mp4 ('mp4v') of a seam sliding under the camera and write its two sidecars."""
    import cv2

    if frames < 1:
        raise ValueError("frames must be >= 1")
    rng = np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(_VIDEO_STREAM,)))
    )
    look = Look.sample(rng)
    o = Optics.sample(rng)
    base = sample_camera(rng, size)
    v_c = base.centre[1] * 0.6  # keep loops of either side inside the frame
    base = Camera(size, base.fov_mm, base.angle, (0.0, v_c))
    curve = SeamCurve.sample(rng, MAX_CURVE_SLOPE)
    speed = base.fov_mm / FRAMES_PER_WIDTH
    centres = np.arange(frames) * speed
    first_corners = base.corners_mm(pad_px=2)
    last_corners = _camera_at(base, float(centres[-1])).corners_mm(pad_px=2)
    ppm = max(base.ppm)
    canvas = Canvas.covering(np.vstack([first_corners, last_corners]), ppm, margin_mm=1.0)
    u_lo, u_hi = canvas.origin[0], canvas.origin[0] + canvas.width / ppm
    half_view = base.fov_mm / 2
    # every occurrence scrolls fully through the view before the video ends
    plan = _plan(rng, float(centres[0]), float(centres[-1]) - half_view, base.fov_mm)
    holes = stitch_holes(u_lo - 4.0, u_hi + 4.0, plan.pitch_at, rng, HOLE_JITTER)
    shapes = _defects(plan, curve, holes, look.thread_mm, rng)
    drawing = draw_seam(curve, holes, look.thread_mm, look.hole_gap, shapes)
    area = (u_hi - u_lo) * canvas.height / ppm
    lint = sample_lint(
        rng,
        np.array([[u_lo, canvas.origin[1]], [u_hi, canvas.origin[1] + canvas.height / ppm]]),
        int(rng.poisson(LINT_PER_MM2 * area)),
        look,
    )
    strip = render_canvas(canvas, look, drawing, lint, rng)
    strip = blur_canvas(strip, o, ppm, motion_angle=0.0)  # the fabric moves along the seam
    strip = cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)
    gain = light_map(o, size)
    noise = NoiseBank(o, size, rng)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size)
    if not writer.isOpened():
        raise PiInspectError(f"cannot write video {out} (OpenCV has no mp4v encoder?)")
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # small frames: thread hand-offs cost more than they save
    try:
        for cu in centres:
            m = canvas.warp_to(_camera_at(base, float(cu)))
            bgr = cv2.warpAffine(
                strip, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            )
            writer.write(finish(bgr, gain, noise.next(), o.jpeg_quality))
    finally:
        writer.release()
        cv2.setNumThreads(threads)
    labels, occurrences = _truth(base, centres, shapes, plan, curve)
    truth = VideoTruth(out, labels, tuple(occurrences), float(fps), tuple(size))
    write_video_truth(truth)
    return truth


def write_video_truth(truth: VideoTruth) -> None:
    truth_csv, occ_csv = sidecar_paths(truth.path)
    with open(truth_csv, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["frame", *LABELS])
        for i, row in enumerate(truth.labels):
            writer.writerow([i, *(str(bool(x)) for x in row)])
    with open(occ_csv, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["id", "label", "first_frame", "last_frame"])
        for o in truth.occurrences:
            writer.writerow([o.id, o.label, o.first_frame, o.last_frame])


def _bool(text: str, where: str) -> bool:
    if text in ("True", "False"):
        return text == "True"
    raise DataError(f"{where}: expected True or False, got {text!r}")


def read_video_truth(path: str | Path) -> VideoTruth:
    """Read the two sidecars of the video ``path`` (fps/size are read from the video if present)."""
    truth_csv, occ_csv = sidecar_paths(path)
    try:
        with open(truth_csv, newline="") as f:
            rows = list(csv.DictReader(f))
        with open(occ_csv, newline="") as f:
            occ_rows = list(csv.DictReader(f))
    except FileNotFoundError as exc:
        raise DataError(f"missing ground truth sidecar {exc.filename}") from None
    try:
        labels = np.array(
            [[_bool(r[k], f"{truth_csv.name} frame {r['frame']}") for k in LABELS] for r in rows],
            dtype=bool,
        ).reshape(-1, len(LABELS))
        if [int(r["frame"]) for r in rows] != list(range(len(rows))):
            raise DataError(f"{truth_csv.name}: frames must be 0..{len(rows) - 1} in order")
        occurrences = tuple(
            Occurrence(int(r["id"]), r["label"], int(r["first_frame"]), int(r["last_frame"]))
            for r in occ_rows
        )
    except (KeyError, ValueError, TypeError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"malformed ground truth next to {path}: {exc}") from None
    fps, size = 0.0, (0, 0)
    try:
        import cv2

        cap = cv2.VideoCapture(str(path))
        if cap.isOpened():
            fps = float(cap.get(cv2.CAP_PROP_FPS))
            size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        cap.release()
    except ImportError:
        pass
    return VideoTruth(Path(path), labels, occurrences, fps, size)
