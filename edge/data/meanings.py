"""What each label means, declared by the data set: ``dataset.toml`` beside the lookup table.

A data set says, per label, when it raises an alarm and what it means::

    [labels.good]
    alarm = "never"
    meaning = "the seam is flawless"

    [labels.length]
    alarm = "absent"      # alarm when the label is NOT present (a low score)
    meaning = "stitch pitch is 2 mm"

``alarm`` is ``"present"`` (alarm when the label's score is high), ``"absent"`` (alarm when it
is low) or ``"never"`` (the label is reported but never alarms). The file sits beside the lookup
table (the folder holding ``labels.csv``, or the CSV's folder) or at the root of the class
folders. ``train`` copies it into the run, ``convert`` into the bundle manifest (``meanings``,
with the score direction each implies in ``alarms``), and the device speaks in its terms: an
event for ``length`` declared ``absent`` is the condition "length absent", with its meaning.

Defaults, where nothing is declared: a data set without the file alarms on every label when it
is present; a bundle whose manifest has no ``meanings`` takes them from its ``alarms``
(``above`` = present, ``below`` = absent, a label without one never alarms). No label name is
special anywhere.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pi_inspect.edge.errors import DataError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (pyproject: tomli for < 3.11)
    import tomli as tomllib

DECLARATION = "dataset.toml"
ALARMS = ("present", "absent", "never")
_DIRECTION = {"present": "above", "absent": "below"}
_FROM_DIRECTION = {"above": "present", "below": "absent"}


@dataclass(frozen=True)
class LabelMeaning:
    """When one label alarms (``present``/``absent``/``never``) and what it means."""

    alarm: str = "present"
    meaning: str = ""

    @property
    def direction(self) -> str | None:
        """The score direction that alarms: ``above`` (present), ``below`` (absent) or None."""
        return _DIRECTION.get(self.alarm)

    def condition(self, label: str) -> str | None:
        """The alarm condition in words: ``"length absent"``; None for a label that never alarms."""
        return None if self.alarm == "never" else f"{label} {self.alarm}"

    def to_dict(self) -> dict[str, str]:
        return {"alarm": self.alarm, "meaning": self.meaning}


def default_meanings(labels: Sequence[str]) -> dict[str, LabelMeaning]:
    """The default for a data set that declares nothing: every label alarms when present."""
    return {label: LabelMeaning("present", "") for label in labels}


def from_alarms(labels: Sequence[str], alarms: Mapping[str, str]) -> dict[str, LabelMeaning]:
    """Meanings implied by score directions (a bundle made before meanings were declared)."""
    return {label: LabelMeaning(_FROM_DIRECTION.get(alarms.get(label, ""), "never")) for label in labels}


def directions(meanings: Mapping[str, LabelMeaning]) -> dict[str, str]:
    """The ``alarms`` map (label -> ``above``/``below``) of the labels that alarm."""
    return {label: m.direction for label, m in meanings.items() if m.direction is not None}


def parse_meanings(
    d: Mapping[str, object], labels: Sequence[str] | None, where: str
) -> dict[str, LabelMeaning]:
    """Check ``{label: {alarm, meaning}}``; every one of ``labels`` declared, nothing else."""
    if not isinstance(d, Mapping):
        raise DataError(f"{where}: labels must be a table of label -> {{alarm, meaning}}")
    out: dict[str, LabelMeaning] = {}
    problems: list[str] = []
    for label, entry in d.items():
        if not isinstance(entry, Mapping):
            problems.append(f"labels.{label}: expected a table with alarm and meaning")
            continue
        unknown = sorted(set(entry) - {"alarm", "meaning"})
        if unknown:
            problems.append(f"labels.{label}: unknown key(s) {unknown} (known: alarm, meaning)")
        alarm = entry.get("alarm")
        if alarm not in ALARMS:
            problems.append(
                f"labels.{label}.alarm: {alarm!r} is not one of {', '.join(map(repr, ALARMS))}"
            )
            continue
        meaning = entry.get("meaning", "")
        if not isinstance(meaning, str) or len(meaning) > 200 or not meaning.isprintable():
            problems.append(f"labels.{label}.meaning: must be one line of text (200 characters)")
            continue
        out[str(label)] = LabelMeaning(str(alarm), meaning.strip())
    if labels is not None:
        missing = [label for label in labels if label not in out and label not in d]
        extra = [label for label in d if label not in labels]
        if missing:
            problems.append(f"no declaration for label(s) {missing}")
        if extra:
            problems.append(f"declares label(s) {extra} the data does not have {list(labels)}")
        out = {label: out[label] for label in labels if label in out}
    if problems:
        raise DataError(f"{where}: " + "; ".join(problems))
    return out


def declared_meanings(
    raw: object, labels: Sequence[str], alarms: Mapping[str, str], where: str, error: type = DataError
) -> tuple[dict[str, LabelMeaning], dict[str, str]]:
    """A manifest's meanings and the alarm directions they imply; without ``meanings`` they
    follow from ``alarms``. A bad declaration raises ``error`` (one line)."""
    if raw is None:
        return from_alarms(labels, alarms), dict(alarms)
    try:
        meanings = parse_meanings(raw, labels, f"{where}: manifest meanings")
    except DataError as exc:
        raise error(str(exc)) from None
    return meanings, directions(meanings)


def declaration_path(data: str | os.PathLike) -> Path:
    """Where a data set's declaration lives: inside a data folder, beside a CSV table."""
    path = Path(data)
    return path / DECLARATION if path.is_dir() else path.parent / DECLARATION


def read_declaration(
    path: str | os.PathLike, labels: Sequence[str] | None = None
) -> dict[str, LabelMeaning]:
    """Parse a ``dataset.toml``; raises DataError naming the file and key."""
    file = Path(path)
    try:
        doc = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{file}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{file}: not valid TOML ({exc})") from None
    except RecursionError:
        raise DataError(f"{file}: not valid TOML (nested too deeply)") from None
    unknown = sorted(set(doc) - {"labels"})
    if unknown:
        raise DataError(f"{file}: unknown key(s) {unknown} (expected [labels.<name>] tables)")
    return parse_meanings(doc.get("labels", {}), labels, str(file))


def meanings_for(
    data: str | os.PathLike, labels: Sequence[str]
) -> tuple[dict[str, LabelMeaning], Path | None]:
    """A data set's declared meanings and the file they came from; the default (and None)
    when it declares nothing."""
    path = declaration_path(data)
    if not path.is_file():
        return default_meanings(labels), None
    return read_declaration(path, labels), path


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    return f'"{escaped}"'


def render_declaration(meanings: Mapping[str, LabelMeaning]) -> str:
    """The TOML text of a declaration (stable order: as given)."""
    lines = [
        "# What each label means and when it raises an alarm on the device.",
        '# alarm = "present" (alarm when the label is there), "absent" (alarm when it is not)',
        '# or "never" (reported, never alarms).',
    ]
    for label, m in meanings.items():
        key = label if label.replace("_", "").replace("-", "").isalnum() else _quote(label)
        lines += ["", f"[labels.{key}]", f"alarm = {_quote(m.alarm)}", f"meaning = {_quote(m.meaning)}"]
    return "\n".join(lines) + "\n"


def write_declaration(path: str | os.PathLike, meanings: Mapping[str, LabelMeaning]) -> Path:
    """Write ``dataset.toml`` (a data folder gets it inside; a ``.toml`` path is used as given)."""
    target = Path(path)
    if target.suffix != ".toml":
        target = target / DECLARATION
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(render_declaration(meanings), encoding="utf-8")
    os.replace(tmp, target)
    return target
