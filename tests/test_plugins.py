"""Outputs are plugins: the example of docs/outputs.md, installed as a throwaway distribution
(its module and one entry-point line, nothing of pi-inspect touched), receives a real daemon's
events; the built-in outputs are found the same way."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pi_inspect.edge.config import Config, parse_config
from pi_inspect.edge.errors import ConfigError
from pi_inspect.edge.outputs import OutputPlugin
from pi_inspect.edge.outputs.registry import GROUP, plugins

ROOT = Path(__file__).resolve().parents[1]


def example_plugin_source() -> str:
    """The first Python block of docs/outputs.md: the whole CSV-log plugin."""
    text = (ROOT / "docs" / "outputs.md").read_text()
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


def install_throwaway_plugin(site: Path) -> None:
    """A distribution of one module and one entry-point line, found on ``site``."""
    site.mkdir(parents=True)
    (site / "pi_inspect_csvlog.py").write_text(example_plugin_source())
    info = site / "pi_inspect_csvlog-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pi-inspect-csvlog\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{GROUP}]\ncsvlog = pi_inspect_csvlog:PLUGIN\n")


def test_the_built_in_outputs_are_plugins_with_their_own_sections():
    found = plugins()
    assert {"stdout", "mqtt", "console"} <= set(found)
    assert all(isinstance(p, OutputPlugin) and p.name == name for name, p in found.items())
    fields = Config.model_fields
    assert all(fields[name].annotation is p.section for name, p in found.items())


def test_an_unknown_output_section_is_an_unknown_key_with_its_path():
    with pytest.raises(ConfigError) as err:
        parse_config({"csvlog": {"enabled": True}})
    assert err.value.problems == ["csvlog: unknown key"]


@pytest.mark.slow
def test_an_output_from_another_distribution_receives_the_daemons_events(tmp_path):
    from pi_inspect.edge.synth import render_video

    site = tmp_path / "site"
    install_throwaway_plugin(site)
    video = tmp_path / "line.mp4"
    render_video(video, frames=300, seed=3)
    state = tmp_path / "state"
    config = tmp_path / "pi.toml"
    config.write_text(
        f'state_dir = "{state}"\n[device]\nid = "line-3"\n[source]\nuri = "{video}"\n'
        '[gpio]\nenabled = false\n[snapshots]\nenabled = false\n[stdout]\nenabled = false\n'
        '[csvlog]\nenabled = true\npath = "defects.csv"\n'
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    check = subprocess.run(
        [sys.executable, "-m", "pi_inspect.edge.cli", "check-config", str(config)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "pi_inspect.edge.cli", "run", "--config", str(config)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader((state / "defects.csv").open()))
    starts = [r for r in rows if r["kind"] == "start"]
    assert len(starts) >= 3 and len(rows) == 2 * len(starts)  # every defect opened and closed
    assert {r["device"] for r in rows} == {"line-3"}
    assert {r["label"] for r in starts} >= {"error", "break"}
    # without the distribution on the path the same section is refused, with its key path
    bare = subprocess.run(
        [sys.executable, "-m", "pi_inspect.edge.cli", "check-config", str(config)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert bare.returncode == 2 and "csvlog: unknown key" in bare.stderr


def test_no_plugin_can_take_the_name_of_a_core_section():
    from pi_inspect.edge.config import CoreConfig
    from pi_inspect.edge.outputs.registry import RESERVED

    assert set(CoreConfig.model_fields) == RESERVED
