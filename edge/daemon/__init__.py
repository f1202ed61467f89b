"""The inspection daemon: source -> pipeline -> inspector -> status and dispatch -> outputs.

Small rooms, each with one job (docs/architecture.md follows one frame through them):

- ``app``: ``build``/``Daemon`` wire the parts; ``run`` opens outputs, LEDs and snapshots.
- ``loop``: the inference loop, watchdog, reload and shutdown.
- ``model``: the ``ModelSlot`` (classifier + debouncer: load, retry, reload, swap).
- ``inspector``: one frame -> an ``Inspection`` (scores, result, events); the trigger gate.
- ``status``: the fault registry and the ``State`` it and the raised labels give; the LEDs.
- ``dispatch``: completes events (snapshots), fans out to outputs, takes commands in.
- ``protocols``: what the daemon needs of its parts.

Faults never end the daemon: a camera that fails is reopened with backoff, a missing or bad
bundle shows amber and is retried, and a bad bundle on reload is refused while the old one runs.
"""

from pi_inspect.edge.daemon.app import Daemon, build
from pi_inspect.edge.daemon.loop import RunSummary
from pi_inspect.edge.daemon.model import default_num_threads, load_from_config

__all__ = ["Daemon", "RunSummary", "build", "default_num_threads", "load_from_config"]
