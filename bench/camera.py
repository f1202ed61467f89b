"""Reduced JPEG decoding on a 640x480 MJPEG source: throughput, CPU at camera pace, and decisions.

Three comparisons, each side by side in one run, on the rendered synthetic seam video transcoded
to an MJPG AVI (the frames a USB camera in MJPG mode sends):

0. each stage's CPU cost alone (full and reduced model input, ``predict``), and the ratio that
   the slower of the daemon's two stages allows;
1. throughput: the daemon (compressed frames, DCT-scaled decode in the capture thread) against
   the naive full-decode loop (``cap.read()`` -> ``prepare()`` -> ``predict()``) with the same
   interpreter threads and with every core as interpreter threads (the target counts the faster
   of the two), every frame inferred in all arms, and against a bare two-thread pipeline of the
   same two stages (what the daemon itself costs), each arm leading the rounds in turn
   (target >= 2.5x); then this machine's inference ceiling: the most model inputs per second
   ``predict`` gets through with nothing else running (one interpreter, one with every core as
   threads, one interpreter per core side by side), which caps every pipeline's throughput and so
   the ratio any arrangement could reach here, as does the CPU work per frame spread perfectly
   over every core;
2. CPU time per frame when frames arrive at a fixed camera pace (30 FPS), both arms;
3. the demo model's decisions from reduced against full decoding: per-frame, per-label alarm
   agreement and debounced event recall on the demo video, agreement and accuracy on held-out
   stills (JPEG, 640x480) (target >= 99.5 % agreement, recall unchanged).

    python bench/camera.py [--bundle DIR] [--frames 900] [--rounds 5] [--paced 240] [--stills 500]
                           [--threads N]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daemon_arm import bare_pipeline, daemon_for  # noqa: E402 - shared with the other benches
from throughput import naive, pipelined  # noqa: E402 - the same arms as bench/throughput.py

SIZE = (640, 480)


def mjpg_video(tmp: Path, frames: int, seed: int) -> tuple[Path, list]:
    """The rendered seam (mp4) re-encoded as MJPG AVI, plus its ground-truth occurrences."""
    import cv2

    from pi_inspect.edge.demo import read_occurrences
    from pi_inspect.edge.synth import render_video

    mp4 = tmp / f"seam_{seed}.mp4"
    render_video(mp4, frames=frames, seed=seed, size=SIZE, fps=15.0)
    avi = tmp / f"seam_{seed}.avi"
    cap = cv2.VideoCapture(str(mp4))
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, SIZE)
    while True:
        ok, image = cap.read()
        if not ok:
            break
        writer.write(image)
    cap.release()
    writer.release()
    return avi, read_occurrences(mp4.with_name(f"{mp4.stem}.occurrences.csv"))


def jpeg_packets(video: Path) -> list[np.ndarray]:
    """The video's compressed frames, as the daemon's source reads them."""
    import cv2

    cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    cap.set(cv2.CAP_PROP_FORMAT, -1)
    packets = []
    while True:
        ok, packet = cap.read()
        if not ok:
            break
        packets.append(packet.reshape(-1))
    cap.release()
    return packets


def prepared_inputs(packets: list[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
    """The model input of every compressed frame, from reduced decoding."""
    from pi_inspect.edge.jpeg import JpegPixels
    from pi_inspect.edge.view import Frame

    return [Frame(0, 0.0, pixels=JpegPixels.of(p)).prepare(size) for p in packets]


def stage_costs(packets: list[np.ndarray], clf, repeats: int = 5) -> tuple[float, float, float]:
    """CPU ms per frame of each stage, alone in one thread (median of ``repeats`` passes over
    the same compressed packets): full decode + resize, reduced decode + resize, ``predict``."""
    import cv2

    from pi_inspect.edge.jpeg import JpegPixels
    from pi_inspect.edge.preprocess import prepare
    from pi_inspect.edge.view import Frame

    inputs = prepared_inputs(packets, clf.input_size)
    full, reduced, infer = [], [], []
    for _ in range(repeats):
        c0 = time.process_time()
        for p in packets:
            prepare(cv2.imdecode(p, cv2.IMREAD_COLOR), clf.input_size)
        full.append((time.process_time() - c0) * 1000.0 / len(packets))
        c0 = time.process_time()
        for p in packets:
            Frame(0, 0.0, pixels=JpegPixels.of(p)).prepare(clf.input_size)
        reduced.append((time.process_time() - c0) * 1000.0 / len(packets))
        c0 = time.process_time()
        for rgb in inputs:
            clf.predict(rgb, with_features=False)
        infer.append((time.process_time() - c0) * 1000.0 / len(inputs))
    return statistics.median(full), statistics.median(reduced), statistics.median(infer)


def bare(video: Path, clf) -> tuple[int, float]:
    """The daemon's two stages and nothing else, on the compressed packets (reduced decode)."""
    from pi_inspect.edge.sources import OpenCVSource

    return bare_pipeline(lambda: OpenCVSource(str(video), live=False, raw_jpeg=True), clf)


def throughput(video: Path, clf, best, rounds: int) -> tuple[float, float, float]:
    """Frames per second of each arm; the target ratio is the daemon's over the faster naive
    arm (``best``: the same loop given every core as interpreter threads)."""
    naive(video, clf)  # warm-up: page cache, interpreter arenas
    fps: dict[str, list[float]] = {"naive": [], "naive_all": [], "bare": [], "daemon": []}
    arms = [
        ("naive", lambda v, _c: naive(v, clf)), ("naive_all", lambda v, _c: naive(v, best)),
        ("bare", bare), ("daemon", pipelined),
    ]  # fmt: skip
    for r in range(rounds):
        for name, arm in arms[r % 4 :] + arms[: r % 4]:  # each arm leads in turn
            n, s = arm(video, clf)
            fps[name].append(n / s)
    med = {k: statistics.median(v) for k, v in fps.items()}
    top = "naive" if med["naive"] >= med["naive_all"] else "naive_all"
    paired = statistics.median(p / n for p, n in zip(fps["daemon"], fps[top], strict=True))
    own = statistics.median(p / q for p, q in zip(fps["daemon"], fps["bare"], strict=True))
    rows = (
        ("naive", "naive full decode"), ("naive_all", "naive, all cores"),
        ("bare", "bare two threads"), ("daemon", "daemon, reduced"),
    )  # fmt: skip
    for key, title in rows:
        print(f"  {title + ':':19s}{med[key]:7.1f} FPS  ({', '.join(f'{x:.0f}' for x in fps[key])})")
    ratio = med["daemon"] / med[top]
    print(f"  ratio over the faster naive arm ({top}): {ratio:.2f}x of medians, {paired:.2f}x "
          f"median of per-round ratios; over the same-threads naive arm "
          f"{med['daemon'] / med['naive']:.2f}x; daemon / bare pipeline {own:.2f}")
    return med[top], med["daemon"], ratio


def ceiling(inputs: list, clfs: dict, parallel: list, rounds: int) -> tuple[str, float]:
    """The most ``predict`` calls per second on prepared inputs, nothing else running: each
    classifier in ``clfs`` alone, and the ``parallel`` classifiers (one per core, one thread
    each) side by side on interleaved shares of the inputs. (best arrangement, its FPS)."""

    def predict_all(clf, share: list) -> None:
        for rgb in share:
            clf.predict(rgb, with_features=False)

    def side_by_side() -> None:
        threads = [
            threading.Thread(target=predict_all, args=(clf, inputs[i :: len(parallel)]))
            for i, clf in enumerate(parallel)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    arms = [(name, functools.partial(predict_all, clf, inputs)) for name, clf in clfs.items()]
    arms.append((f"{len(parallel)} interpreters side by side", side_by_side))
    fps: dict[str, list[float]] = {name: [] for name, _ in arms}
    for r in range(rounds):
        for name, arm in arms[r % len(arms) :] + arms[: r % len(arms)]:
            t0 = time.monotonic()
            arm()
            fps[name].append(len(inputs) / (time.monotonic() - t0))
    med = {name: statistics.median(v) for name, v in fps.items()}
    for name, value in med.items():
        print(f"  {name + ':':34s}{value:7.1f} FPS  ({', '.join(f'{x:.0f}' for x in fps[name])})")
    top = max(med, key=med.__getitem__)
    return top, med[top]


class Paced:
    """A file source that hands out frames no faster than a camera at ``fps`` would."""

    live = False

    def __init__(self, inner, fps: float) -> None:
        self._inner, self._period = inner, 1.0 / fps
        self.name = inner.name
        self._next = 0.0

    def open(self) -> None:
        self._inner.open()
        self._next = time.monotonic()

    def read(self):
        wait = self._next - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._next += self._period
        return self._inner.read()

    def close(self) -> None:
        self._inner.close()


def cpu_at_pace(video: Path, clf, frames: int, fps: float) -> tuple[float, float]:
    """CPU milliseconds per frame (all threads) for both arms at ``fps``."""
    import cv2

    from pi_inspect.edge.preprocess import prepare
    from pi_inspect.edge.sources import OpenCVSource

    period = 1.0 / fps
    cap = cv2.VideoCapture(str(video))
    c0, t_next = time.process_time(), time.monotonic()
    n = 0
    while n < frames:
        wait = t_next - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        t_next += period
        ok, image = cap.read()
        if not ok:
            break
        clf.predict(prepare(image, clf.input_size), with_features=False)
        n += 1
    naive_ms = (time.process_time() - c0) * 1000.0 / n
    cap.release()

    def source() -> Paced:
        inner = OpenCVSource(str(video), live=False, raw_jpeg=True)
        return Paced(_Limited(inner, frames), fps)

    daemon = daemon_for(video, clf, queue=2, source_factory=source)
    c0 = time.process_time()
    summary = daemon.run(threading.Event())
    daemon_ms = (time.process_time() - c0) * 1000.0 / max(summary.frames, 1)
    return naive_ms, daemon_ms


class _Limited:
    """The first ``count`` frames of a source."""

    def __init__(self, inner, count: int) -> None:
        self._inner, self._count, self.name = inner, count, inner.name
        self._given = 0

    def open(self) -> None:
        self._inner.open()

    def read(self):
        if self._given >= self._count:
            return None
        self._given += 1
        return self._inner.read()

    def close(self) -> None:
        self._inner.close()


def video_scores(video: Path, clf) -> tuple[np.ndarray, np.ndarray]:
    """Scores per frame from full decoding (OpenCV, as before) and from reduced decoding."""
    import cv2

    from pi_inspect.edge.preprocess import prepare
    from pi_inspect.edge.sources import OpenCVSource

    full = []
    cap = cv2.VideoCapture(str(video))
    while True:
        ok, image = cap.read()
        if not ok:
            break
        full.append(clf.predict(prepare(image, clf.input_size), with_features=False).scores)
    cap.release()
    reduced = []
    source = OpenCVSource(str(video), live=False, raw_jpeg=True)
    source.open()
    while (frame := source.read()) is not None:
        reduced.append(clf.predict(frame.prepare(clf.input_size), with_features=False).scores)
    source.close()
    return np.array(full), np.array(reduced)


def decisions(scores: np.ndarray, clf) -> np.ndarray:
    """Alarm (True/False) per frame and alarming label, as the daemon's rules decide."""
    from pi_inspect.edge.decide import make_rules

    rules = make_rules(clf.labels, clf.thresholds, clf.alarms)
    cols = [clf.labels.index(label) for label in rules]
    return np.array(
        [[rule.alarms(float(s[c])) for c, rule in zip(cols, rules.values(), strict=True)]
         for s in scores]
    )


def events_recall(scores: np.ndarray, clf, truth: list) -> tuple[float, int]:
    from pi_inspect.edge.decide import Debouncer, make_rules
    from pi_inspect.edge.demo import match_events

    debouncer = Debouncer(make_rules(clf.labels, clf.thresholds, clf.alarms), k=3, n=4, m=5)
    events = []
    for i, s in enumerate(scores):
        row = {label: float(v) for label, v in zip(clf.labels, s, strict=True)}
        events += [e for e in debouncer.update(i, float(i), row) if e.kind == "end"]
    events += debouncer.flush()
    score = match_events(events, truth)
    return score.recall, score.events


def still_scores(clf, count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Held-out stills (another seed than the training data) as 640x480 JPEG, both decodes."""
    import cv2

    from pi_inspect.edge.jpeg import JpegPixels
    from pi_inspect.edge.preprocess import prepare
    from pi_inspect.edge.synth import render_still
    from pi_inspect.edge.view import Frame

    full, reduced, truth = [], [], []
    for i in range(count):
        sample = render_still(seed, i, size=SIZE)
        data = cv2.imencode(".jpg", sample.image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        full.append(clf.predict(prepare(image, clf.input_size), with_features=False).scores)
        frame = Frame(i, 0.0, pixels=JpegPixels.of(data))
        reduced.append(clf.predict(frame.prepare(clf.input_size), with_features=False).scores)
        truth.append([sample.labels[label] for label in clf.labels])
    return np.array(full), np.array(reduced), np.array(truth)


def main() -> int:
    import os

    from pi_inspect.edge.daemon import default_num_threads
    from pi_inspect.edge.runtime import load_classifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default=None)
    parser.add_argument("--frames", type=int, default=900, help="video frames (demo length)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--paced", type=int, default=240, help="frames per arm at 30 FPS")
    parser.add_argument("--stills", type=int, default=500, help="held-out stills (seed 2)")
    parser.add_argument("--seed", type=int, default=1, help="demo video seed")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads (both)")
    args = parser.parse_args()
    threads = args.threads or default_num_threads()
    clf = load_classifier(args.bundle, num_threads=threads)
    cores = os.cpu_count() or 1
    best = load_classifier(args.bundle, num_threads=cores)  # the naive loop at its fastest
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        video, truth = mjpg_video(Path(tmp), args.frames, args.seed)
        w, h = clf.input_size
        print(f"640x480 MJPG AVI, {args.frames} frames, model {w}x{h}; {threads} interpreter "
              f"thread(s) in both arms (the daemon's default here), one more naive arm with "
              f"{cores}")
        packets = jpeg_packets(video)
        full_ms, reduced_ms, infer_ms = stage_costs(packets, clf)
        print(f"0. model input: full decode + resize {full_ms:.2f} ms CPU/frame, reduced "
              f"decode + resize {reduced_ms:.2f} ms ({full_ms / reduced_ms:.2f}x less); "
              f"predict {infer_ms:.2f} ms")
        print(f"  the slower stage bounds the daemon: about (full + predict) / "
              f"max(reduced, predict) = {(full_ms + infer_ms) / max(reduced_ms, infer_ms):.2f}x")
        print("1. throughput")
        naive_top, _, ratio = throughput(video, clf, best, args.rounds)
        ok = ok and ratio >= 2.5
        print("1b. this machine's inference ceiling: predict alone on the prepared inputs")
        inputs = prepared_inputs(packets, clf.input_size)
        parallel = [load_classifier(args.bundle, num_threads=1) for _ in range(cores)]
        arrangements = {f"one interpreter, {threads} thread(s)": clf}
        if cores != threads:
            arrangements[f"one interpreter, {cores} threads"] = best
        top, most = ceiling(inputs, arrangements, parallel, args.rounds)
        for extra in parallel:
            extra.close()
        packed = cores * 1000.0 / (reduced_ms + infer_ms)
        cap = min(most, packed)
        print(f"  inference alone: at most {most:.0f} FPS ({top}); every core busy with nothing "
              f"but the reduced input and predict (step 0): {cores} x 1000 / ({reduced_ms:.2f} "
              f"+ {infer_ms:.2f}) = {packed:.0f} FPS")
        print(f"  so no arrangement here exceeds {cap:.0f} FPS = {cap / naive_top:.2f}x over the "
              f"faster naive arm (2.5x would be {2.5 * naive_top:.0f} FPS"
              f"{'' if cap >= 2.5 * naive_top else ', out of reach on this machine'})")
        print(f"2. CPU per frame at 30 FPS ({args.paced} frames per arm)")
        naive_ms, daemon_ms = cpu_at_pace(video, clf, args.paced, 30.0)
        print(f"  naive full decode: {naive_ms:.2f} ms CPU/frame")
        print(f"  daemon, reduced:   {daemon_ms:.2f} ms CPU/frame ({naive_ms / daemon_ms:.2f}x less)")
        print("3. decisions, reduced vs full decoding")
        full, reduced = video_scores(video, clf)
        agree = float((decisions(full, clf) == decisions(reduced, clf)).mean())
        (r_full, n_full), (r_red, n_red) = (events_recall(s, clf, truth) for s in (full, reduced))
        print(f"  demo video: {agree:.4%} of frame x label alarms agree; max |score diff| "
              f"{np.abs(full - reduced).max():.3f}")
        print(f"  event recall: full {r_full:.3f} ({n_full} events), reduced {r_red:.3f} "
              f"({n_red} events), {len(truth)} true")
        s_full, s_red, s_truth = still_scores(clf, args.stills, seed=2)
        cut = np.array([clf.thresholds[label] for label in clf.labels])
        sagree = float(((s_full > cut) == (s_red > cut)).mean())
        acc_full = float(((s_full > cut) == s_truth).mean())
        acc_red = float(((s_red > cut) == s_truth).mean())
        print(f"  held-out stills ({args.stills}, seed 2): {sagree:.4%} of label decisions "
              f"agree; accuracy full {acc_full:.4f}, reduced {acc_red:.4f}")
        ok = ok and agree >= 0.995 and sagree >= 0.995 and r_red >= r_full
    clf.close()
    best.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
