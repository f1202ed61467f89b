"""pi-inspect deploy: verified copy, atomic switch of MODELS/current, rollback, remote via ssh.

Every bundle here is real (the demo model under its own manifest): deploy loads it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from bundle_helpers import make_bundle, write_raw_manifest

from pi_inspect.edge.cli import main
from pi_inspect.edge.deploy import (
    DeployError,
    check_in_child,
    deploy_local,
    rollback_local,
    systemctl_reload,
)
from pi_inspect.edge.deploy_ssh import RemoteTarget, deploy_remote, parse_target
from pi_inspect.edge.errors import BundleError


class Reloads:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def models(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


def current(models: Path) -> str:
    return os.readlink(models / "current")


def test_deploy_switches_current_keeps_previous_and_reloads(tmp_path, models):
    a, b = make_bundle(tmp_path, "seam", 1), make_bundle(tmp_path, "seam", 2)
    reloads = Reloads()
    first = deploy_local(a, models, reload=reloads)
    second = deploy_local(b, models, reload=reloads)
    assert current(models) == second.current and second.current.startswith("seam-")
    assert os.readlink(models / "previous") == first.current != second.current
    assert (models / "current" / "manifest.json").read_bytes() == (b / "manifest.json").read_bytes()
    assert reloads.count == 2
    assert sorted(p.name for p in models.iterdir()) == sorted(
        ["current", "previous", first.current, second.current]
    )


def bundle_dirs(models: Path) -> set[str]:
    return {p.name for p in models.iterdir() if p.is_dir() and not p.is_symlink()}


def test_deploy_prunes_all_but_the_most_recent_bundles(tmp_path, models):
    (models / "notes").mkdir()  # not a bundle: never touched
    names = [deploy_local(make_bundle(tmp_path, "seam", i), models).current for i in range(5)]
    assert bundle_dirs(models) == {"notes", *names[-3:]}
    assert current(models) == names[4] and os.readlink(models / "previous") == names[3]


def test_pruning_never_removes_current_or_previous(tmp_path, models):
    names = [deploy_local(make_bundle(tmp_path, "seam", i), models).current for i in range(3)]
    rollback_local(models)  # current -> names[1], previous -> names[2]
    newer = deploy_local(make_bundle(tmp_path, "seam", 9), models, keep=1).current
    assert bundle_dirs(models) == {newer, names[1]}
    assert os.readlink(models / "previous") == names[1]


def test_keep_zero_keeps_every_bundle(tmp_path, models):
    names = [
        deploy_local(make_bundle(tmp_path, "seam", i), models, keep=0).current for i in range(5)
    ]
    assert bundle_dirs(models) == set(names)


def test_corrupt_copy_is_refused_and_the_running_model_stays(tmp_path, models):
    a, b = make_bundle(tmp_path, "seam", 1), make_bundle(tmp_path, "seam", 2)
    good = deploy_local(a, models)
    reloads = Reloads()

    def corrupting_copy(src: Path, dst: Path) -> None:
        import shutil

        shutil.copytree(src, dst)
        model = dst / "model.tflite"
        data = bytearray(model.read_bytes())
        data[100] ^= 0xFF  # one flipped byte in transit
        model.write_bytes(bytes(data))

    with pytest.raises(BundleError, match="copy refused, nothing switched") as info:
        deploy_local(b, models, reload=reloads, copy=corrupting_copy)
    assert "\n" not in str(info.value)
    assert current(models) == good.current
    assert not (models / "previous").exists()
    assert reloads.count == 0
    assert sorted(p.name for p in models.iterdir()) == ["current", good.current]


def test_tampered_source_bundle_is_refused_before_copying(tmp_path, models):
    a = make_bundle(tmp_path, "seam", 1)
    (a / "model.tflite").write_bytes(b"not the model the manifest describes")
    with pytest.raises(BundleError, match="does not match the manifest"):
        deploy_local(a, models)
    assert list(models.iterdir()) == []


def test_rollback_restores_the_previous_bundle_and_back_again(tmp_path, models):
    a, b = make_bundle(tmp_path, "seam", 1), make_bundle(tmp_path, "seam", 2)
    first = deploy_local(a, models).current
    second = deploy_local(b, models).current
    reloads = Reloads()
    back = rollback_local(models, reload=reloads)
    assert (back.current, back.previous) == (first, second)
    assert current(models) == first and os.readlink(models / "previous") == second
    assert (models / "current" / "manifest.json").read_bytes() == (a / "manifest.json").read_bytes()
    rollback_local(models, reload=reloads)
    assert current(models) == second
    assert reloads.count == 2


def test_rollback_refuses_a_previous_bundle_that_no_longer_verifies(tmp_path, models):
    a, b = make_bundle(tmp_path, "seam", 1), make_bundle(tmp_path, "seam", 2)
    first = deploy_local(a, models).current
    second = deploy_local(b, models).current
    (models / first / "model.tflite").write_bytes(b"bit rot")
    with pytest.raises(BundleError, match="rollback refused"):
        rollback_local(models)
    assert current(models) == second


def test_rollback_without_previous_is_one_line_error(tmp_path, models):
    deploy_local(make_bundle(tmp_path, "seam", 1), models)
    with pytest.raises(DeployError, match="nothing to roll back to"):
        rollback_local(models)


def test_redeploying_the_running_bundle_changes_nothing_and_does_not_reload(tmp_path, models):
    a, b = make_bundle(tmp_path, "seam", 1), make_bundle(tmp_path, "seam", 2)
    deploy_local(a, models)
    running = deploy_local(b, models).current
    reloads = Reloads()
    again = deploy_local(b, models, reload=reloads)
    assert again.reused and again.current == running
    assert reloads.count == 0
    assert current(models) == running


def test_readers_never_see_current_missing_while_switching(tmp_path, models):
    a, b = make_bundle(tmp_path, "seam", 1), make_bundle(tmp_path, "seam", 2)
    deploy_local(a, models)
    deploy_local(b, models)
    stop = threading.Event()
    misses: list[int] = []

    def reader() -> None:
        while not stop.is_set():
            if not (models / "current" / "manifest.json").is_file():
                misses.append(1)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(200):  # the switch is under test: both bundles were loaded when deployed
            rollback_local(models, check=lambda bundle: None)
    finally:
        stop.set()
        thread.join()
    assert misses == []


def test_missing_models_directory_is_refused(tmp_path):
    with pytest.raises(DeployError, match="does not exist"):
        deploy_local(make_bundle(tmp_path, "seam", 1), tmp_path / "nope")


def test_reload_failure_is_reported_after_the_switch(tmp_path, models, monkeypatch):
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "systemctl").write_text('#!/bin/sh\necho "Unit $3.service not loaded." >&2\nexit 5\n')
    (stubs / "systemctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{stubs}:{os.environ['PATH']}")
    with pytest.raises(
        DeployError, match="switched, but .*try-reload-or-restart pi-inspect.* not loaded"
    ):
        deploy_local(
            make_bundle(tmp_path, "seam", 1), models, reload=systemctl_reload("pi-inspect")
        )
    assert (models / "current" / "manifest.json").is_file()


def test_target_parsing_tells_remote_from_local():
    assert parse_target("pi@seampi.local:/var/lib/pi-inspect/models") == RemoteTarget(
        "pi@seampi.local", "/var/lib/pi-inspect/models"
    )
    assert parse_target("seampi:models") == RemoteTarget("seampi", "models")
    assert parse_target("/var/lib/pi-inspect/models") is None
    assert parse_target("./odd:name") is None


def test_cli_deploy_and_rollback_on_a_local_target(tmp_path, models, capsys):
    a, b = make_bundle(tmp_path, "seam", 1), make_bundle(tmp_path, "seam", 2)
    assert main(["deploy", "--no-reload", str(a), str(models)]) == 0
    assert main(["deploy", "--no-reload", str(b), str(models)]) == 0
    assert main(["deploy", "--no-reload", "--rollback", str(models)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2].startswith(f"rolled back {models}: current is now seam-")
    assert out[-1].startswith("not reloaded (--no-reload)")
    assert (models / "current" / "manifest.json").read_bytes() == (a / "manifest.json").read_bytes()


def test_cli_deploys_to_a_new_local_folder_without_systemd_and_says_so(tmp_path, capsys):
    from pi_inspect.edge.commands.deploy import service_installed

    a = make_bundle(tmp_path, "seam", 1)
    target = tmp_path / "fresh" / "models"
    assert main(["deploy", str(a), str(target)]) == 1  # a missing folder is refused ...
    err = capsys.readouterr().err
    assert "does not exist" in err and "--create" in err and err.count("\n") == 1
    assert main(["deploy", "--create", "--service", "no-such-unit", str(a), str(target)]) == 0
    out = capsys.readouterr().out.splitlines()  # ... unless --create asks for it
    assert out[0].startswith(f"deployed {a} to {target}: current is seam-")
    assert out[0].endswith("(no previous bundle)") and "None" not in "\n".join(out)
    assert out[1].startswith("not reloaded: no systemd service 'no-such-unit' here")
    assert not service_installed("no-such-unit")
    assert (target / "current" / "manifest.json").read_bytes() == (a / "manifest.json").read_bytes()


def test_cli_refuses_a_tampered_bundle_in_one_line(tmp_path, models, capsys):
    a = make_bundle(tmp_path, "seam", 1)
    (a / "model.tflite").write_bytes(b"x")
    assert main(["deploy", "--no-reload", str(a), str(models)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not match the manifest" in err


def _fake_ssh_pair(tmp_path: Path) -> tuple[str, str]:
    """ssh that runs the remote command locally and scp that copies locally: no sshd needed."""
    ssh, scp = tmp_path / "ssh", tmp_path / "scp"
    ssh.write_text(
        '#!/bin/bash\nwhile [ "$1" = -o ]; do shift 2; done\nhost="$1"; shift\n'
        'echo "$host" >> "$(dirname "$0")/hosts.log"\nexec bash -c "$*"\n'
    )
    scp.write_text(
        '#!/bin/bash\nwhile [[ "$1" == -* ]]; do [ "$1" = -o ] && shift; shift; done\n'
        'exec cp -r "$1" "${2#*:}"\n'
    )
    for f in (ssh, scp):
        f.chmod(0o755)
    return str(ssh), str(scp)


def test_remote_deploy_runs_verification_on_the_target_and_cleans_staging(tmp_path, models):
    ssh, scp = _fake_ssh_pair(tmp_path)
    remote_cmd = f"{sys.executable} -m pi_inspect.edge.cli"
    target = RemoteTarget("pi@seampi", str(models))
    a, b = make_bundle(tmp_path, "seam", 1), make_bundle(tmp_path, "seam", 2)
    before = set(Path("/tmp").glob("pi-inspect-deploy.*"))
    for bundle in (a, b):
        out = deploy_remote(
            bundle, target, reload=False, remote_command=remote_cmd, ssh=ssh, scp=scp
        )
        assert out.startswith("deployed /") and "current is seam-" in out
        assert "None" not in out
    assert (models / "current" / "manifest.json").read_bytes() == (b / "manifest.json").read_bytes()
    out = deploy_remote(
        None, target, rollback=True, reload=False, remote_command=remote_cmd, ssh=ssh, scp=scp
    )
    assert out.startswith("rolled back")
    assert (models / "current" / "manifest.json").read_bytes() == (a / "manifest.json").read_bytes()
    assert set(Path("/tmp").glob("pi-inspect-deploy.*")) <= before  # others may run too
    assert set((tmp_path / "hosts.log").read_text().split()) == {"pi@seampi"}


def test_remote_deploy_reports_the_remote_refusal_in_one_line(tmp_path, models):
    ssh, scp = _fake_ssh_pair(tmp_path)
    a = make_bundle(tmp_path, "seam", 1)
    (a / "model.tflite").write_bytes(b"x")
    with pytest.raises(DeployError, match="deploy on pi@seampi failed: .*does not match") as info:
        deploy_remote(
            a,
            RemoteTarget("pi@seampi", str(models)),
            reload=False,
            remote_command=f"{sys.executable} -m pi_inspect.edge.cli",
            ssh=ssh,
            scp=scp,
        )
    assert "\n" not in str(info.value)
    assert not (models / "current").exists()


# --- a bundle is checked for what it is, not only its hashes ---------------------------------


@pytest.fixture(scope="module")
def running(tmp_path_factory) -> tuple[Path, str]:
    """A models directory whose ``current`` is a good bundle; refused deploys must leave it."""
    root = tmp_path_factory.mktemp("running")
    models = root / "models"
    models.mkdir()
    return models, deploy_local(make_bundle(root, "seam", "good"), models).current


def _model_bytes(change):
    def edit_files(bundle: Path) -> None:
        model = bundle / "model.tflite"
        model.write_bytes(change(model.read_bytes()))

    return edit_files


def _set(path: str, value):
    def edit(data: dict) -> None:
        *parents, key = path.split(".")
        node = data
        for p in parents:
            node = node[p]
        node[key] = value

    return edit


def _without_golden_and_head(data: dict) -> None:
    data["golden"], data["heatmap"] = None, None
    data["files"].pop("golden.npz")


def _fewer_labels(data: dict) -> None:
    _without_golden_and_head(data)
    data["labels"] = ["good", "error", "break"]
    data["thresholds"].pop("length")
    data["alarms"].pop("length")
    data.get("meanings", {}).pop("length", None)


def _golden_off(data: dict) -> None:
    data["golden"]["scores"][0][2] = 0.5  # the model gives 0.996 here


def _symlinked_model(bundle: Path) -> None:
    outside = bundle.parent / "elsewhere.tflite"
    (bundle / "model.tflite").rename(outside)
    (bundle / "model.tflite").symlink_to(outside)  # same bytes, same hash, outside the bundle


BROKEN = {
    # the model file itself (hashes match: convert or a copy wrote the wrong bytes)
    "random model": (
        None,
        _model_bytes(
            lambda b: bytes(np.random.default_rng(0).integers(0, 256, len(b), dtype=np.uint8))
        ),
        "cannot load the model",
    ),
    "truncated model": (None, _model_bytes(lambda b: b[: len(b) // 2]), "cannot load the model"),
    "empty model": (None, _model_bytes(lambda b: b""), "cannot load the model"),
    # the manifest does not describe the model
    "input size": (_set("input.width", 64), None, "does not match the manifest's 64x96"),
    "label count": (_fewer_labels, None, "gives 4 scores for 3 labels"),
    "signature": (_set("signature", "serving_other"), None, "no signature 'serving_other'"),
    "output name": (_set("outputs.scores", "logits"), None, "no output named 'logits'"),
    "golden set": (_golden_off, None, "golden set mismatch: input 0 scores 'break' 0.996"),
    # values that would silently disable detection
    "NaN threshold": (_set("thresholds.error", float("nan")), None, "threshold of 'error' is nan"),
    "threshold above 1": (_set("thresholds.error", 1.5), None, "must be a number in \\[0, 1\\]"),
    "threshold below 0": (_set("thresholds.error", -0.1), None, "must be a number in \\[0, 1\\]"),
    # labels that cannot be MQTT topic levels or file names
    "label with #": (_set("labels", ["good", "err#", "break", "length"]), None, "contains '#'"),
    "label with +": (_set("labels", ["good", "error", "a+b", "length"]), None, "contains '\\+'"),
    "label with /": (_set("labels", ["good", "error", "break", "len/gth"]), None, "contains '/'"),
    "label with $": (
        _set("labels", ["$SYS", "error", "break", "length"]),
        None,
        "starts with '\\$'",
    ),
    "empty label": (_set("labels", ["", "error", "break", "length"]), None, "is empty"),
    "NUL in label": (
        _set("labels", ["go\0od", "error", "break", "length"]),
        None,
        "contains '\\\\x00'",
    ),
    # files outside the bundle
    "model ../": (
        _set("model", "../model.tflite"),
        None,
        "must be a plain file name inside the bundle",
    ),
    "reference absolute": (
        _set("reference_model", "/etc/passwd"),
        None,
        "must be a plain file name",
    ),
    "symlinked model": (None, _symlinked_model, "is a symbolic link"),
}


@pytest.mark.parametrize("fault", list(BROKEN))
def test_deploy_refuses_a_broken_bundle_and_current_stays(tmp_path, running, fault):
    models, good = running
    edit, files, reason = BROKEN[fault]
    bundle = make_bundle(tmp_path, "seam", "broken", edit=edit)
    if files is not None:
        files(bundle)
        write_raw_manifest(bundle, json.loads((bundle / "manifest.json").read_text()))
    before = sorted(p.name for p in models.iterdir())
    reloads = Reloads()
    with pytest.raises(BundleError, match=reason) as info:
        deploy_local(bundle, models, reload=reloads)
    assert "\n" not in str(info.value)
    assert current(models) == good
    assert reloads.count == 0
    assert sorted(p.name for p in models.iterdir()) == before  # no half-installed copy


def test_a_retuned_manifest_with_the_same_model_deploys_as_a_new_bundle(tmp_path, models):
    first = deploy_local(make_bundle(tmp_path, "seam", 1), models)
    retuned = make_bundle(tmp_path / "retuned", "seam", 1, edit=_set("thresholds.error", 0.7))
    second = deploy_local(retuned, models)
    assert not second.reused and second.current != first.current
    assert (
        json.loads((models / "current" / "manifest.json").read_text())["thresholds"]["error"] == 0.7
    )


def test_a_model_that_kills_the_runtime_is_refused_in_one_line(tmp_path):
    crash = (
        tmp_path / "python"
    )  # the check's interpreter dies of SIGSEGV, as a bad model can make it
    crash.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crash.chmod(0o755)
    with pytest.raises(BundleError, match="the runtime crashed loading the model \\(SIGSEGV\\)"):
        check_in_child(make_bundle(tmp_path), python=str(crash))


def test_a_model_that_hangs_the_runtime_is_refused_after_the_timeout(tmp_path):
    hang = tmp_path / "python"
    hang.write_text("#!/bin/sh\nexec sleep 30\n")
    hang.chmod(0o755)
    with pytest.raises(BundleError, match="did not finish within 0.5 s"):
        check_in_child(make_bundle(tmp_path), python=str(hang), timeout_s=0.5)


def test_cli_refuses_a_model_the_runtime_cannot_load_in_one_line(tmp_path, models, capsys):
    bundle = make_bundle(tmp_path, edit=_set("signature", "nope"))
    assert main(["deploy", "--no-reload", str(bundle), str(models)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no signature 'nope'" in err
    assert not (models / "current").exists()
