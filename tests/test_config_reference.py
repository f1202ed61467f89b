"""check-config reports every problem at once with suggestions; the config reference and the
example config are generated from the models and stay current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from pi_inspect.edge.config import parse_config
from pi_inspect.edge.config_doc import MEANINGS, example_toml, keys, reference_markdown
from pi_inspect.edge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_field_and_cross_field_problems_come_in_one_pass_with_a_suggestion():
    data = {"outptu": {}, "gpio": {"green": 27}, "decide": {"k": "three"}}
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert set(err.value.problems) == {
        "outptu: unknown key (did you mean 'output'?)",
        "decide.k: Input should be a valid integer",
        "gpio.red: pin 27 is already used by gpio.green",  # shown before the rest is fixed
    }


def test_nearest_key_is_suggested_inside_a_section_and_nothing_far_fetched():
    with pytest.raises(ConfigError) as err:
        parse_config({"source": {"rui": "0"}, "gpio": {"zzzz": 1}})
    assert "source.rui: unknown key (did you mean 'uri'?)" in err.value.problems
    assert "gpio.zzzz: unknown key" in err.value.problems


def test_a_pin_conflict_with_a_gpio_trigger_is_reported_once():
    with pytest.raises(ConfigError) as err:
        parse_config({"trigger": {"mode": "gpio", "pin": 17}})
    assert err.value.problems == ["trigger.pin: pin 17 is already used by gpio.green"]


def test_an_integer_camera_index_is_accepted():
    assert parse_config({"source": {"uri": 0}}).source.uri == "0"
    with pytest.raises(ConfigError):
        parse_config({"source": {"uri": True}})


def test_every_key_has_type_default_and_meaning_and_the_table_names_real_keys():
    found = keys()
    assert len(found) > 50
    assert all(k.meaning and k.type for k in found), [k.path for k in found if not k.meaning]
    assert set(MEANINGS) <= {k.path for k in found}


def test_docs_config_md_is_the_generated_reference():
    assert (ROOT / "docs" / "config.md").read_text() == reference_markdown(), (
        "docs/config.md is stale: pi-inspect config --reference > docs/config.md"
    )


def test_the_example_config_is_complete_and_valid(tmp_path):
    text = example_toml()
    parsed = tomllib.loads(text)
    config = parse_config(parsed)
    assert config == parse_config({})  # every value written is the default
    listed = {line.split(" = ")[0].lstrip("# ").strip() for line in text.splitlines()
              if " = " in line or line.endswith("=   (unset)")}
    assert {k.path.rsplit(".", 1)[-1] for k in keys()} <= listed
    path = tmp_path / "config.toml"
    path.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "pi_inspect.edge.cli", "check-config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and ": OK" in proc.stdout, proc.stderr
    out = subprocess.run([sys.executable, "-m", "pi_inspect.edge.cli", "config", "--example"],
                         capture_output=True, text=True, timeout=60).stdout
    assert out == text
