"""Output files follow the umask: a CSV or JSON written atomically is not forced to 0600."""

from __future__ import annotations

import os
import stat

import pytest

from pi_inspect.edge.data.table import SEED_LABELS, write_table
from pi_inspect.train.runs import write_json


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_tables_and_json_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_table(tmp_path / "labels.csv", ["a.png"], SEED_LABELS, [[1, 0, 0, 1]])
        write_json(tmp_path / "run.json", {"a": 1})
    finally:
        os.umask(old)
    for name in ("labels.csv", "run.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
