"""Procedural seam images and videos with ground truth (``pi-inspect synth``).

Numpy + OpenCV only, so the Pi can render the demo video itself. Stills:
:func:`render_still`, data sets: :func:`generate_dataset`; video: :func:`render_video`,
:func:`read_video_truth`.
"""
