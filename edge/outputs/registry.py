"""Finding the output plugins: the entry-point group ``pi_inspect.outputs``.

Each entry point names an ``OutputPlugin`` object; its name is the config section it owns. A
package adds an output with one line in its own metadata::

    [project.entry-points."pi_inspect.outputs"]
    csvlog = "my_package.csvlog:PLUGIN"

A plugin that fails to load, or whose name is taken, is one log line and is left out: its
section is then an unknown key in the config, which says so with its key path.
"""

from __future__ import annotations

import functools
import logging
from importlib.metadata import entry_points

from pi_inspect.edge.outputs import OutputPlugin

GROUP = "pi_inspect.outputs"
# Sections of the core config: no plugin may take their names.
RESERVED = frozenset(
    {"state_dir", "device", "source", "model", "anomaly", "trigger", "decide", "gpio", "reject",
     "snapshots", "collect", "shadow", "drift", "output", "pipeline",
     "fleet", "stations"}
)

log = logging.getLogger(__name__)


@functools.cache
def plugins() -> dict[str, OutputPlugin]:
    """Every output plugin installed, by section name, in the order they were found."""
    found: dict[str, OutputPlugin] = {}
    for ep in entry_points(group=GROUP):
        if ep.name in found:
            continue  # the same distribution seen twice on sys.path: the first one wins
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party package must not stop the station
            log.error("output plugin %s (%s) not loaded: %s", ep.name, ep.value, exc)
            continue
        if not isinstance(plugin, OutputPlugin) or plugin.name != ep.name:
            log.error("output plugin %s (%s) is not an OutputPlugin named %r", ep.name, ep.value, ep.name)
            continue
        if ep.name in RESERVED:
            log.error("output plugin %s (%s): that name is a core config section", ep.name, ep.value)
            continue
        found[ep.name] = plugin
    return found
