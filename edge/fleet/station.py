"""The station's side of the fleet, as the daemon builds it: an ``Applier`` that installs into
the models directory ``deploy`` manages (or None when ``[fleet]`` is off), and ``use_desired``,
what an applied desired state does to that directory."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pi_inspect.edge.bundle import read_manifest
from pi_inspect.edge.deploy import (
    CURRENT,
    check_in_child,
    install_bundle,
    rollback_local,
    switch_to,
)
from pi_inspect.edge.errors import PiInspectError
from pi_inspect.edge.fleet.desired import Applier
from pi_inspect.edge.promote import models_dir

log = logging.getLogger(__name__)

FLEET_PROMOTED = "fleet_promoted"  # state_dir file: the bundle the fleet last put in service


def desired_applier(config: Any, use: Callable[[str, str], None]) -> Applier | None:
    """``use(mode, name)`` runs the installed bundle in shadow or promotes it."""
    fleet = config.fleet
    if not fleet.enabled or fleet.url_prefix is None:
        return None

    def install(folder: Path) -> str:
        return install_bundle(folder, models_dir(config), check=check_in_child).name

    return Applier(fleet.url_prefix, fleet.max_bytes, install, use, ca_file=fleet.ca_file)


def use_desired(config: Any, mode: str, name: str) -> str | None:
    """Do what an applied desired state asks of the models directory; returns the bundle to run
    in shadow (None: none). ``promote`` switches ``current`` to ``name`` and notes it when that
    switched; ``rollback`` (``name`` is then a sha256) goes back to ``previous`` only where the
    fleet put that bundle in service."""
    models = models_dir(config)
    promoted = config.resolved_state_dir() / FLEET_PROMOTED
    if mode == "shadow":
        return str(models / name)
    if mode == "promote":
        if not switch_to(models, name).reused:  # the fleet put it in service: a rollback may undo it
            try:
                promoted.write_text((_identity(models / name) or "") + "\n")
            except OSError as exc:  # in service all the same; only a rollback will not undo it
                log.warning("cannot note the fleet's promotion in %s: %s", promoted, exc)
    elif mode == "rollback":
        by_fleet = promoted.read_text().strip() if promoted.is_file() else None
        if by_fleet == name and _identity(models / CURRENT) == name:  # else nothing to undo
            switch = rollback_local(models)
            promoted.unlink(missing_ok=True)
            log.warning("fleet rollback: back to %s", switch.current)
    return None


def _identity(bundle: Path) -> str | None:
    """The content sha256 of the bundle at ``bundle`` (a link may point nowhere: None)."""
    try:
        return read_manifest(bundle).content_sha256
    except (PiInspectError, OSError):
        return None
