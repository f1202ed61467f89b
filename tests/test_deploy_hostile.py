"""pi-inspect deploy of a hostile bundle folder: only the files the manifest lists are copied,
each a bounded regular file; links, FIFOs, devices and folders are never followed or read.

Every bundle is real (the demo model under its own manifest); deploys run through the CLI.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from bundle_helpers import make_bundle, write_raw_manifest
from test_deploy import _fake_ssh_pair

from pi_inspect.edge import bundle_copy
from pi_inspect.edge.bundle import anomaly_bundle_dir
from pi_inspect.edge.cli import main
from pi_inspect.edge.deploy import check_in_child
from pi_inspect.edge.deploy_ssh import RemoteTarget, deploy_remote
from pi_inspect.edge.errors import BundleError

LISTED = {"manifest.json", "model.tflite", "golden.npz"}


@pytest.fixture
def models(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """A good bundle plus what its manifest does not list: links to a secret file, a folder and
    /dev/zero, a FIFO, a plain file and a folder."""
    bundle = make_bundle(tmp_path)
    outside = tmp_path / "outside"
    (outside / "many").mkdir(parents=True)
    for i in range(20):
        (outside / "many" / f"f{i}").write_text("x")
    (outside / "secret").write_text("root:$6$hash:19000::::::\n")
    (bundle / "notes.txt").symlink_to(outside / "secret")
    (bundle / "data").symlink_to(outside / "many", target_is_directory=True)
    (bundle / "zero").symlink_to("/dev/zero")
    os.mkfifo(bundle / "pipe")
    (bundle / "README").write_text("how this model was trained\n")
    (bundle / "runs").mkdir()
    return bundle


def deploy(bundle: Path, models: Path, *extra: str) -> int:
    return main(["deploy", "--no-reload", *extra, str(bundle), str(models)])


def installed(models: Path) -> set[str]:
    return {p.name for p in (models / "current").iterdir()}


def incoming(models: Path) -> list[str]:
    return [p.name for p in models.iterdir() if p.name.startswith(".incoming-")]


@pytest.mark.timeout(60)  # reading /dev/zero would never end
def test_deploy_copies_only_listed_files_and_names_what_it_left_out(hostile, models, capsys):
    assert deploy(hostile, models) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"deployed {hostile} to {models}: current is seam-")
    assert installed(models) == LISTED
    assert all((models / "current" / name).is_file() for name in LISTED)
    assert not any(p.is_symlink() for p in (models / "current").iterdir())
    warnings = [line for line in err.splitlines() if line.startswith("warning: left out")]
    assert warnings == [
        "warning: left out, not listed in manifest.json: README, data, notes.txt, pipe, runs and 1 more"
    ]
    assert "Traceback" not in err and incoming(models) == []


def _as_symlink_to_a_copy(path: Path) -> None:
    outside = path.parent.parent / f"elsewhere-{path.name}"
    path.rename(outside)
    path.symlink_to(outside)  # same bytes, so the same hash: refused for what it is


def _as_symlink_to_dev_zero(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


def _as_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _as_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "inputs.npy").write_bytes(b"x")


LISTED_NOT_REGULAR = {
    "model symlink": ("model.tflite", _as_symlink_to_a_copy, "is a symbolic link"),
    "model symlink to /dev/zero": ("model.tflite", _as_symlink_to_dev_zero, "is a symbolic link"),
    "golden FIFO": ("golden.npz", _as_fifo, "is a FIFO"),
    "golden folder": ("golden.npz", _as_folder, "is a directory"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", list(LISTED_NOT_REGULAR))
def test_a_listed_file_that_is_not_a_regular_file_refuses_the_deploy_in_one_line(
    tmp_path, models, capsys, case
):
    name, replace, reason = LISTED_NOT_REGULAR[case]
    bundle = make_bundle(tmp_path)
    replace(bundle / name)  # after the manifest was written: its hash still looks right
    assert deploy(bundle, models) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("pi-inspect deploy: error: deploy refused: ")
    assert f"{name} in bundle {bundle} {reason}" in err
    assert list(models.iterdir()) == []


def test_a_listed_file_over_the_size_limit_is_refused_before_it_is_read(
    tmp_path, models, capsys, monkeypatch
):
    monkeypatch.setattr(bundle_copy, "MAX_FILE_BYTES", 64 << 10)  # the model is 256 KiB
    assert deploy(make_bundle(tmp_path), models) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "deploy refused: model.tflite in bundle" in err
    assert err.rstrip().endswith("is larger than 0.0625 MiB")
    assert list(models.iterdir()) == []


def test_listed_files_over_the_total_limit_are_refused(tmp_path, models, capsys, monkeypatch):
    monkeypatch.setattr(bundle_copy, "MAX_BUNDLE_BYTES", 300 << 10)  # model + golden: 356 KiB
    assert deploy(make_bundle(tmp_path), models) == 1
    assert "add up to more than 0.292969 MiB" in capsys.readouterr().err
    assert list(models.iterdir()) == []


@pytest.mark.parametrize(
    "fault", [KeyboardInterrupt(), OSError(errno.ENOSPC, "No space left on device")]
)
def test_a_copy_interrupted_midway_leaves_nothing_behind(tmp_path, models, capsys, monkeypatch, fault):
    copy_file = bundle_copy._copy_file
    copied: list[str] = []

    def failing_copy_file(bundle, name, dst, budget):
        if copied:  # the manifest is in, the model is next
            raise fault
        copied.append(name)
        return copy_file(bundle, name, dst, budget)

    monkeypatch.setattr(bundle_copy, "_copy_file", failing_copy_file)
    rc = deploy(make_bundle(tmp_path), models)
    err = capsys.readouterr().err
    assert copied == ["manifest.json"]
    assert rc == (130 if isinstance(fault, KeyboardInterrupt) else 1)
    if rc == 1:
        assert err.count("\n") == 1 and "No space left on device" in err
    assert "Traceback" not in err
    assert list(models.iterdir()) == []


def _anomaly_without_golden(root: Path) -> Path:
    """The demo anomaly bundle as an older convert wrote it: no golden set."""
    bundle = root / "anomaly"
    bundle.mkdir()
    shutil.copyfile(anomaly_bundle_dir() / "model.tflite", bundle / "model.tflite")
    data = json.loads((anomaly_bundle_dir() / "manifest.json").read_text())
    data["golden"], data["reference_model"] = None, None
    data["files"] = {"model.tflite": ""}
    write_raw_manifest(bundle, data)
    return bundle


def test_an_anomaly_bundle_without_a_golden_set_deploys_with_a_visible_warning(
    tmp_path, models, capsys
):
    bundle = _anomaly_without_golden(tmp_path)
    assert deploy(bundle, models) == 0
    out, err = capsys.readouterr()
    assert "current is seam-anomaly-" in out
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and f"bundle {bundle} has no golden set" in warnings[0]
    assert ".incoming-" not in err


def test_every_warning_the_bundle_check_prints_is_returned_once(tmp_path):
    child = tmp_path / "python"  # stands in for the child: two warnings, a repeat, chatter
    child.write_text(
        "#!/bin/sh\n"
        "echo 'warning: the runtime is older than the converter'\n"
        "echo 'warning: the runtime is older than the converter'\n"
        "echo 'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.' >&2\n"
        "echo 'WARNING: delegate fell back to the reference kernels' >&2\n"
        "echo 'ok seam 1: 96x96, 4 labels, golden set of 6 passed'\n"
    )
    child.chmod(0o755)
    assert check_in_child(make_bundle(tmp_path), python=str(child)) == [
        "the runtime is older than the converter",
        "WARNING: delegate fell back to the reference kernels",
    ]


def test_remote_deploy_sends_only_the_listed_regular_files(hostile, models, tmp_path):
    ssh, scp = _fake_ssh_pair(tmp_path)
    sent = tmp_path / "sent.log"
    Path(scp).write_text(  # the fake scp also records what it was given to send
        '#!/bin/bash\nwhile [[ "$1" == -* ]]; do [ "$1" = -o ] && shift; shift; done\n'
        f'find "$1" -mindepth 1 -printf "%P %y\\n" >> {sent}\n'
        'exec cp -r "$1" "${2#*:}"\n'
    )
    warned: list[str] = []
    out = deploy_remote(
        hostile,
        RemoteTarget("pi@seampi", str(models)),
        reload=False,
        remote_command=f"{sys.executable} -m pi_inspect.edge.cli",
        ssh=ssh,
        scp=scp,
        warn=warned.append,
    )
    assert "current is seam-" in out
    assert sorted(sent.read_text().splitlines()) == sorted(f"{name} f" for name in LISTED)
    assert installed(models) == LISTED
    assert warned == ["left out, not listed in manifest.json: README, data, notes.txt, pipe, runs and 1 more"]


def test_remote_deploy_refuses_a_listed_symlink_before_connecting(tmp_path, models):
    ssh, scp = _fake_ssh_pair(tmp_path)
    bundle = make_bundle(tmp_path)
    _as_symlink_to_dev_zero(bundle / "model.tflite")
    with pytest.raises(BundleError, match="model.tflite in bundle .* is a symbolic link"):
        deploy_remote(bundle, RemoteTarget("pi@seampi", str(models)), ssh=ssh, scp=scp)
    assert not (tmp_path / "hosts.log").exists()


def test_cli_remote_deploy_warns_on_this_machine_about_what_it_left_out(
    hostile, models, tmp_path, capsys, monkeypatch
):
    _fake_ssh_pair(tmp_path)  # ssh and scp on PATH
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    remote = f"{sys.executable} -m pi_inspect.edge.cli"
    assert deploy(hostile, f"pi@seampi:{models}", "--remote-command", remote) == 0
    out, err = capsys.readouterr()
    assert "current is seam-" in out and "Traceback" not in err
    assert "warning: left out, not listed in manifest.json: README" in err
    assert installed(models) == LISTED
