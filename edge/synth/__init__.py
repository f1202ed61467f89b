"""Procedural seam images and videos with ground truth (``pi-inspect synth``).

Numpy + OpenCV only, so the Pi can render the demo video itself. The scene is drawn in
millimetres (fabric weave, lockstitch seam at 2 or 4 mm pitch, ``error`` loops, ``break`` cuts
with frayed ends, lint) and photographed by a 4:3 camera with blur, uneven light, noise and
JPEG, so every output size shows the same scene distribution.

- stills: :func:`render_still` (one image), :func:`generate_dataset` (``images/``,
  ``labels.csv``, ``boxes.csv``)
- video: :func:`render_video` -> :class:`VideoTruth`, :func:`read_video_truth`
"""

from pi_inspect.edge.synth.dataset import DatasetSummary, generate_dataset
from pi_inspect.edge.synth.still import LABELS, Box, Sample, render_still
from pi_inspect.edge.synth.video import Occurrence, VideoTruth, read_video_truth, render_video

__all__ = [
    "LABELS",
    "Box",
    "DatasetSummary",
    "Occurrence",
    "Sample",
    "VideoTruth",
    "generate_dataset",
    "read_video_truth",
    "render_still",
    "render_video",
]
