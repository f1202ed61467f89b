"""The station's side of the fleet, as the daemon builds it: an ``Applier`` that installs into
the models directory ``deploy`` manages, or None when ``[fleet]`` is off."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pi_inspect.edge.deploy import check_in_child, install_bundle
from pi_inspect.edge.fleet.desired import Applier
from pi_inspect.edge.promote import models_dir


def desired_applier(config: Any, use: Callable[[str, str], None]) -> Applier | None:
    """``use(mode, name)`` runs the installed bundle in shadow or promotes it."""
    fleet = config.fleet
    if not fleet.enabled or fleet.url_prefix is None:
        return None

    def install(folder: Path) -> str:
        return install_bundle(folder, models_dir(config), check=check_in_child).name

    return Applier(fleet.url_prefix, fleet.max_bytes, install, use, ca_file=fleet.ca_file)
