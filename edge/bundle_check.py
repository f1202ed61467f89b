"""``python -m pi_inspect.edge.bundle_check BUNDLE``: load a bundle with this machine's runtime and run its
golden set, in a process of its own.

``deploy`` runs this as a child before it switches ``current``, so a model that crashes or
hangs the runtime takes down the child, not the deploy (nor a daemon). The last line on stdout
is the verdict: ``ok ...`` with exit 0, or the one-line reason with exit 1 (a bad bundle) or 2
(no runtime installed). Before it, each warning (a logged warning, a Python warning) is one
``warning: `` line on stdout, which deploy passes on to the operator; a runtime's own start-up
chatter on stderr stays out of the way.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pi_inspect.edge.errors import MissingExtraError, PiInspectError

WARNING = "warning: "  # marks a warning line on stdout (the check's, and deploy's on a Pi)
MAX_WARNING_CHARS = 300


class _WarningLines(logging.Handler):
    """Each warning logged in the child as one ``warning: `` line on stdout."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            lines = self.format(record).strip().splitlines()  # a traceback: its first line
        except Exception:
            self.handleError(record)
            return
        text = " ".join(lines[0].split()) if lines else record.levelname
        print(f"{WARNING}{text[:MAX_WARNING_CHARS]}", flush=True)


def child_warnings(stdout: str, stderr: str) -> list[str]:
    """The warnings a child printed, without their marker, one line each, in order, once each:
    its ``warning: `` lines on stdout and a runtime's ``WARNING`` lines on stderr."""
    found = [line[len(WARNING) :] for line in stdout.splitlines() if line.startswith(WARNING)]
    found += [line for line in stderr.splitlines() if line.lstrip().lower().startswith("warning")]
    lines = [line.strip()[:MAX_WARNING_CHARS] for line in found]
    return list(dict.fromkeys(line for line in lines if line))


def _warnings_to_stdout() -> None:
    handler = _WarningLines(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger().addHandler(handler)
    logging.captureWarnings(True)  # warnings.warn(...) too, as a logged warning


def check(bundle: str, backend: str = "auto") -> str:
    """Load ``bundle`` and run its golden set (or one blank frame without one); a summary."""
    from pi_inspect.edge.runtime import load_classifier

    with load_classifier(bundle, backend=backend, num_threads=1) as clf:
        w, h = clf.input_size
        golden = clf.manifest.golden
        ran = f"golden set of {len(golden.scores)} passed" if golden is not None else "no golden set"
        return f"ok {clf.info.name} {clf.info.version}: {w}x{h}, {len(clf.labels)} labels, {ran}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pi_inspect.edge.bundle_check")
    parser.add_argument("bundle")
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args(argv)
    _warnings_to_stdout()
    try:
        print(check(args.bundle, args.backend), flush=True)
    except MissingExtraError as exc:
        print(str(exc).splitlines()[0], flush=True)
        return 2
    except PiInspectError as exc:
        print(str(exc).splitlines()[0], flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
