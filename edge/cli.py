"""The ``pi-inspect`` console command: one entry point, one subcommand per job.

Each subcommand lives in its own module exposing ``configure(parser)`` and ``run(args) -> int``.
The module is imported only when its subcommand runs (or ``--help`` is asked of it), so
``pi-inspect demo`` on a Pi never pays for, or needs, TensorFlow. A subcommand whose optional
extra is not installed says in one line which extra to install and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from pi_inspect.edge import __version__
from pi_inspect.edge.errors import ConfigError, MissingExtraError, PiInspectError


@dataclass(frozen=True)
class Command:
    module: str  # module with configure(parser) and run(args) -> int
    help: str
    extra: str  # the pip extra that brings this command's dependencies


COMMANDS: dict[str, Command] = {
    # edge: runs on the Pi
    "demo": Command("pi_inspect.edge.commands.demo", "run the daemon on the built-in demo bundle and a synthetic seam video", "edge"),
    "run": Command("pi_inspect.edge.commands.run", "run the inspection daemon from a TOML config", "edge"),
    "check-config": Command("pi_inspect.edge.commands.check_config", "validate a config file and print every problem", "edge"),
    "config": Command("pi_inspect.edge.commands.config", "print a complete commented config, or the reference of every key", "edge"),
    "doctor": Command("pi_inspect.edge.commands.doctor", "check this device: runtime, camera, GPIO, broker, bundle, disk", "edge"),
    "deploy": Command("pi_inspect.edge.commands.deploy", "copy a model bundle to a Pi (or a local path) and switch to it", "edge"),
    "synth": Command("pi_inspect.edge.commands.synth", "render synthetic seam images (and a video) with ground truth", "edge"),
    "frames": Command("pi_inspect.edge.commands.frames", "extract frames from a recorded video", "edge"),
    "split": Command("pi_inspect.edge.commands.split", "split a lookup table into train/valid/test without leakage", "edge"),
    "label": Command("pi_inspect.edge.commands.label", "label video frames in the browser", "edge"),
    "promote": Command("pi_inspect.edge.commands.promote", "make the shadow candidate the model in service, past its gate", "edge"),
    "pull": Command("pi_inspect.edge.commands.pull", "bring a station's samples into a data set folder", "edge"),
    "fleet": Command("pi_inspect.edge.commands.fleet", "every station on the broker: version, bundle, health, alarm rate", "edge"),
    # workstation: training and conversion
    "train": Command("pi_inspect.train.commands.train", "train a classifier from a lookup table or class folders", "train"),
    "evaluate": Command("pi_inspect.train.commands.evaluate", "evaluate a training run on a test set", "train"),
    "gradcam": Command("pi_inspect.train.commands.gradcam", "Grad-CAM heat maps for a training run", "train"),
    "embed": Command("pi_inspect.train.commands.embed", "image embeddings from a run's headless model", "train"),
    "similar": Command("pi_inspect.train.commands.similar", "nearest images to a query by embedding", "train"),
    "convert": Command("pi_inspect.convert.commands.convert", "convert a run to a verified int8 TFLite model bundle", "train"),
    "bench": Command("pi_inspect.convert.commands.bench", "latency of a bundle's int8 and float32 models", "edge"),
}

# Third-party top-level modules and the extra that brings each one.
MODULE_EXTRAS: dict[str, str] = {
    "tensorflow": "train",
    "keras": "train",
    "matplotlib": "train",
    "cv2": "edge",
    "ai_edge_litert": "edge",
    "gpiozero": "edge",
    "paho": "edge",
    "pydantic": "edge",
    "tflite_runtime": "tflite",
    "playwright": "dev",
}


def missing_extra(exc: ModuleNotFoundError, command: str) -> MissingExtraError | None:
    """Turn an ImportError of a known optional dependency into a one-line hint."""
    top = (exc.name or "").split(".")[0]
    extra = MODULE_EXTRAS.get(top)
    if extra is None:
        return None
    return MissingExtraError(
        f"'pi-inspect {command}' needs the '{extra}' extra (no module named '{top}'): "
        f"pip install 'pi-inspect[{extra}]'"
    )


def _import_command(name: str):
    return importlib.import_module(COMMANDS[name].module)


class HelpFormatter(argparse.HelpFormatter):
    """Every option's default in one style, ``(default: X)``, added from the parser itself; an
    option whose default is computed (None) says in its help what it is, in the same style."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "(default:" in text or default in (None, "", []) or default is False:
            return text
        if default is argparse.SUPPRESS:
            return text
        if not action.option_strings and action.nargs not in ("?", "*"):
            return text
        return f"{text} (default: %(default)s)"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; subcommand options are added only for ``only`` (lazy imports)."""
    parser = argparse.ArgumentParser(
        prog="pi-inspect",
        description="Seam inspection on a Raspberry Pi: train, convert, run.",
    )
    parser.add_argument("--version", action="version", version=f"pi-inspect {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=cmd.help,
            description=cmd.help,
            formatter_class=HelpFormatter,
        )
        if name == only:
            _import_command(name).configure(p)
    return parser


def quiet() -> None:
    """Keep libraries' chatter out of the user's way (``-v`` shows it): TensorFlow's C++ start-up
    and converter logs (CUDA probing, oneDNN notices, absl, ``fully_quantize: 0 ...``), absl's
    Python warnings, and gpiozero's pin-factory fallback warnings on a machine without GPIO."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # OpenCV's own "[ WARN ] can't open camera by index" lines, several per reconnect attempt:
    # the capture thread says once when the camera goes and once when it is back.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("GLOG_minloglevel", "3")
    warnings.filterwarnings("ignore", message=r"Falling back from ", module=r"gpiozero\.")
    logging.getLogger("absl").setLevel(logging.ERROR)


def _fail(command: str, message: str, code: int) -> int:
    print(f"pi-inspect {command}: error: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a in ("-v", "--verbose") for a in argv):
        quiet()
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        command = None
    try:
        parser = build_parser(only=command)
    except ModuleNotFoundError as exc:
        hint = missing_extra(exc, command or "")
        if hint is None:
            raise
        return _fail(command or "", str(hint), 2)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:  # libraries' own INFO lines ("Assets written to ...") are noise here
        for noisy in ("tensorflow", "h5py", "matplotlib", "PIL"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        logging.getLogger("absl").setLevel(logging.ERROR)
    try:
        if COMMANDS[args.command].extra == "train":  # TensorFlow, imported without its chatter
            importlib.import_module("pi_inspect.train.quiet").import_tensorflow()
        return int(_import_command(args.command).run(args) or 0)
    except ModuleNotFoundError as exc:
        hint = missing_extra(exc, args.command)
        if hint is None:
            raise
        return _fail(args.command, str(hint), 2)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return _fail(args.command, str(exc), 2)
    except PiInspectError as exc:  # one line; a few errors name their own exit code
        return _fail(args.command, str(exc), int(getattr(exc, "exit_code", 1)))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
