"""``python -m pi_inspect.edge.bundle_check BUNDLE``: load a bundle with this machine's runtime and run its
golden set, in a process of its own.

``deploy`` runs this as a child before it switches ``current``, so a model that crashes or
hangs the runtime takes down the child, not the deploy (nor a daemon). The last line on stdout
is the verdict: ``ok ...`` with exit 0, or the one-line reason with exit 1 (a bad bundle) or 2
(no runtime installed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pi_inspect.edge.errors import MissingExtraError, PiInspectError


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
