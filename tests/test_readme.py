"""The README runs as written: every ``pi-inspect`` command in its ``bash`` blocks, in order, in
an empty folder, so a command that needs a folder no earlier command made fails here.

The README shows real sizes (6000 images, 20 epochs); this test scales counts and epochs down
with the substitutions below, and turns the one remote target into a local folder. Set-up steps
(venv, pip, tests/run.sh) and the subscriber's ``mosquitto_sub`` are named, not run: the venv
and pip are what this suite already runs in.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# (pattern, replacement): scaled-down counts; the README keeps the real ones.
SCALE = [
    (r"--count 6000\b", "--count 40"),
    (r"--count 8000\b", "--count 60"),  # --good-only: that many good stills
    (r"^(pi-inspect train --task anomaly .*)$", r"\1 --size 32"),  # its default step budget
    (r"^pi-inspect demo --anomaly$", "pi-inspect demo --anomaly --frames 45"),
    (r"--count 1000\b", "--count 16"),
    (r"--epochs 20\b", "--epochs 1"),
    (r"--size 96\b", "--size 32"),
    (r"^(pi-inspect train --data \S+ --out \S+)$", r"\1 --epochs 1 --size 32"),  # defaults
    (r"--frames 450\b", "--frames 30"),
    (r"^pi-inspect demo$", "pi-inspect demo --frames 45"),
    (r"^pi-inspect bench (\S+)$", r"pi-inspect bench \1 --runs 5"),
    (r"^(pi-inspect convert .*)$", r"\1 --calib-count 16 --test-count 16 --allow-drop"),
    # the Pi's models folder, made here (no ssh)
    (r"^pi-inspect deploy (.*?)\S+@\S+:(/\S+)$", r"pi-inspect deploy --create \1deployed\2"),
]
# Everything in a bash block that is not a pi-inspect command, and why it is not run here.
NOT_RUN = {
    "python3": "creates the venv this suite already runs in",
    ".": "activates that venv",
    "pip": "installs into that venv (tests/run.sh did)",
    "bash": "tests/run.sh is what runs this test",
    "mosquitto_sub": "a subscriber on another machine",
}
CHATTER = ("cuInit", "oneDNN", "absl::InitializeLog", "fully_quantize", "Falling back from")
EXPECTED = {"demo", "synth", "split", "train", "evaluate", "gradcam", "embed", "similar",
            "convert", "bench", "deploy", "frames", "label"}


def readme_commands(text: str) -> list[str]:
    """Every command of the README's ``bash`` blocks, ``&&`` chains split, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if not words:
                continue
            part: list[str] = []
            for word in [*words, "&&"]:
                if word == "&&":
                    commands.append(shlex.join(part))
                    part = []
                else:
                    part.append(word)
    return commands


def scaled(command: str) -> str:
    for pattern, replacement in SCALE:
        command = re.sub(pattern, replacement, command)
    return command


def test_readme_commands_are_all_known_and_every_command_is_shown():
    commands = readme_commands(README.read_text())
    first = {shlex.split(c)[0] for c in commands}
    assert first <= {"pi-inspect", *NOT_RUN}, first
    shown = {shlex.split(c)[1] for c in commands if c.startswith("pi-inspect ")}
    assert shown >= EXPECTED, EXPECTED - shown
    set_up = re.findall(r"## Set up.*?## ", README.read_text(), flags=re.S)[0]
    assert len(re.findall(r"```bash\n", set_up)) == 2  # one for the demo, one for the tests
    assert "bash tests/run.sh" in set_up


def _label_every_frame(url: str, video: Path) -> None:
    """What the person at the page does: save every frame with its labels (here the synthetic
    video's ground truth), as the page's save key posts them."""
    from pi_inspect.edge.synth.video import read_video_truth

    truth = read_video_truth(video)
    with urllib.request.urlopen(url + "api/state", timeout=30) as page:
        state = json.load(page)
    for index in range(state["count"]):
        values = {label: truth.frame_labels(index)[label] for label in state["labels"]}
        save = urllib.request.Request(
            url + "api/save", data=json.dumps({"index": index, "values": values}).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )
        with urllib.request.urlopen(save, timeout=30) as reply:
            assert reply.status == 200


def _run_label(argv: list[str], cwd: Path, env: dict) -> None:
    """The labelling server serves until stopped: start it, see it listen, label the video's
    frames through it, stop it."""
    proc = subprocess.Popen([*argv, "--port", "0"], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("open http://127.0.0.1:"):
                break
        assert any(x.startswith("open http://") for x in lines), "".join(lines)
        url = lines[-1].split()[1]
        with urllib.request.urlopen(url, timeout=30) as page:  # it serves the labelling page
            assert page.status == 200
        _label_every_frame(url, cwd / argv[argv.index("label") + 1])
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(lines) + out


def _run_readme(commands: list[str], tmp_path: Path) -> tuple[Path, list[str]]:
    """Run ``commands`` scaled down in an empty folder; the folder and the subcommands run."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    work = tmp_path / "clone"
    work.mkdir()
    ran = []
    for command in commands:
        words = shlex.split(scaled(command))
        if words[0] != "pi-inspect":
            assert words[0] in NOT_RUN
            continue
        argv = [sys.executable, "-m", "pi_inspect.edge.cli", *words[1:]]
        ran.append(words[1])
        if words[1] == "label":
            _run_label(argv, work, env)
            continue
        proc = subprocess.run(argv, cwd=work, env=env, text=True, capture_output=True,
                              timeout=900)
        assert proc.returncode == 0, f"{scaled(command)}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        for chatter in CHATTER:  # quiet by default: no library noise on the way
            assert chatter not in proc.stderr, f"{scaled(command)}: {proc.stderr[-3000:]}"
    return work, ran


@pytest.mark.timeout(1800)
def test_every_readme_command_runs_as_written_in_an_empty_folder(tmp_path):
    pytest.importorskip("tensorflow")
    work, ran = _run_readme(readme_commands(README.read_text()), tmp_path)
    assert set(ran) == EXPECTED
    # what the commands promised: a bundle deployed, meanings carried, the demo tidied up
    assert (work / "deployed/var/lib/pi-inspect/models/current/manifest.json").is_file()
    assert (work / "runs/demo/dataset.toml").is_file()
    assert (work / "data/labelled/dataset.toml").is_file()
    assert (work / "runs/line/valid.csv").is_file()  # one recording, split without --valid
    assert not list((tmp_path / "tmp").glob("pi-inspect-demo-*"))  # removed without --keep


@pytest.mark.timeout(900)
def test_readme_own_frames_block_labels_one_recording_and_trains_on_it_without_valid(tmp_path):
    pytest.importorskip("tensorflow")
    block = next(b for b in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
                 if "pi-inspect label " in b)
    commands = readme_commands(f"```bash\n{block}```")
    assert "pi-inspect train --data data/labelled --out runs/line" in commands
    work, ran = _run_readme(commands, tmp_path)
    assert ran == ["synth", "frames", "label", "train"]
    labelled = (work / "data/labelled/labels.csv").read_text().splitlines()
    train = (work / "runs/line/train.csv").read_text().splitlines()
    valid = (work / "runs/line/valid.csv").read_text().splitlines()
    assert len(valid) - 1 >= 1 and len(train) - 1 >= 1
    assert len(train) + len(valid) - 2 < len(labelled) - 1  # frames at the cuts left out
