"""``pi-inspect convert RUN --calib DATA --out BUNDLE``: a verified int8 model bundle.

Steps: load the run's best Keras model; export it (``model.export`` route: ExportArchive ->
SavedModel -> ``TFLiteConverter.from_saved_model``) with named ``scores`` and ``features``
outputs; quantize with real, unaugmented training images as raw pixels; list every op and refuse
float ops left in an int8 model; compare float and converted scores on held-out images and
refuse an accuracy drop beyond the tolerance; then write and verify the bundle.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("pi-inspect.convert")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="training run directory (has model.keras, run.json)")
    parser.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    parser.add_argument(
        "--calib", type=Path, default=None,
        help="calibration images: a lookup table or class folders (default: the run's train split)",
    )
    parser.add_argument(
        "--test", type=Path, default=None,
        help="held-out set for the parity report (default: the run's valid split)",
    )
    parser.add_argument("--quant", choices=["int8", "float16", "float32"], default="int8",
                        help="quantization of the converted model")
    parser.add_argument("--io-type", choices=["uint8", "int8"], default="uint8",
                        help="integer type of the int8 model's input and output")
    parser.add_argument("--calib-count", type=int, default=300,
                        help="calibration images for int8 ranges")
    parser.add_argument("--test-count", type=int, default=1000,
                        help="held-out images for the parity report")
    parser.add_argument("--tolerance", type=float, default=1.0,
                        help="largest per-label accuracy drop allowed, in points")
    parser.add_argument("--allow-drop", action="store_true",
                        help="write the bundle even if a label loses more than the tolerance")
    parser.add_argument("--no-reference", action="store_true",
                        help="do not include the float32 reference model (used by bench)")
    parser.add_argument("--name", default=None, help="bundle name (default: the run's folder name)")
    parser.add_argument("--version", default=None, help="bundle version (default: UTC date)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")


def run(args: argparse.Namespace) -> int:
    from pi_inspect.convert.pipeline import ConvertOptions, convert_run

    opts = ConvertOptions(
        quant=args.quant,
        io_type=args.io_type,
        calib=args.calib,
        test=args.test,
        calib_count=args.calib_count,
        test_count=args.test_count,
        tolerance=args.tolerance,
        allow_drop=args.allow_drop,
        reference=not args.no_reference,
        name=args.name,
        version=args.version,
        force=args.force,
    )
    result = convert_run(args.run, args.out, opts)
    print(result.summary())
    return 0
