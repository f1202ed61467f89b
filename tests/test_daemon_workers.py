"""A backlog of frames inferred side by side, one interpreter per frame, decided in order."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

from edge.daemon.workers import Replicas


class Tagged:
    """A model whose score is the frame's first pixel; every call waits at ``barrier`` (when
    given) until another interpreter is inside ``predict`` too."""

    def __init__(self, barrier: threading.Barrier | None = None, copyable: bool = True) -> None:
        self.barrier, self.copyable = barrier, copyable
        self.threads: list[str] = []
        self.made: list[Tagged] = []
        self.closed = False

    def __getattr__(self, name):
        if name == "replica" and self.__dict__.get("copyable"):
            return self._replica
        raise AttributeError(name)

    def _replica(self) -> Tagged:
        twin = Tagged(self.barrier)
        twin.threads = self.threads
        self.made.append(twin)
        return twin

    def predict(self, rgb: np.ndarray, with_features: bool = True):
        self.threads.append(threading.current_thread().name)
        if self.barrier is not None:
            self.barrier.wait()  # broken (an error) if no other frame is being inferred now
        return type("P", (), {"scores": np.array([float(rgb[0, 0, 0])]), "features": None})()

    def close(self) -> None:
        self.closed = True


def frames(*values: int) -> list[np.ndarray]:
    return [np.full((2, 2, 3), v, np.uint8) for v in values]


def test_two_queued_frames_run_at_the_same_time_on_two_interpreters_and_come_back_in_order():
    model = Tagged(threading.Barrier(2, timeout=10))
    replicas = Replicas(2)
    got = replicas.predict_many(model, frames(7, 9))
    assert [p.scores[0] for p in got] == [7.0, 9.0]
    assert len(model.made) == 1 and len(set(model.threads)) == 2
    got = replicas.predict_many(model, frames(3, 4))  # the replica is kept, not made again
    assert [p.scores[0] for p in got] == [3.0, 4.0] and len(model.made) == 1
    replicas.close()
    replicas.close()  # idempotent
    assert model.made[0].closed and not model.closed  # the running model is the slot's


def test_one_frame_or_one_worker_runs_in_the_calling_thread_without_a_copy():
    model = Tagged()
    assert Replicas(2).predict_many(model, frames(5))[0].scores[0] == 5.0
    got = Replicas(1).predict_many(model, frames(1, 2, 3))
    assert [p.scores[0] for p in got] == [1.0, 2.0, 3.0]
    assert model.made == [] and set(model.threads) == {threading.current_thread().name}


def test_a_model_that_cannot_be_copied_infers_its_frames_one_at_a_time():
    model = Tagged(copyable=False)
    got = Replicas(2).predict_many(model, frames(1, 2))
    assert [p.scores[0] for p in got] == [1.0, 2.0]


def test_a_new_model_gets_new_replicas_and_the_old_ones_are_closed():
    first, second = Tagged(), Tagged()
    replicas = Replicas(2)
    replicas.predict_many(first, frames(1, 2))
    replicas.predict_many(second, frames(1, 2))
    assert first.made[0].closed and len(second.made) == 1 and not second.made[0].closed
    replicas.resize(3)
    assert second.made[0].closed
    replicas.predict_many(second, frames(1, 2, 3))
    assert len(second.made) == 3


def test_a_replica_scores_exactly_as_the_bundle_it_copies():
    from edge.bundle import golden_inputs
    from edge.runtime import load_classifier

    with load_classifier(None, num_threads=1) as clf:
        twin = clf.replica()
        inputs = golden_inputs(clf.bundle_dir, clf.manifest)
        for rgb in inputs[:4]:
            assert np.array_equal(clf.predict(rgb).scores, twin.predict(rgb).scores)
        twin.close()


def test_a_replica_refuses_a_model_file_that_changed_since_the_bundle_was_loaded(tmp_path):
    from edge.bundle import default_bundle_dir
    from edge.errors import BundleError
    from edge.runtime import load_classifier

    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_dir(), bundle)
    with load_classifier(bundle, num_threads=1) as clf:
        model = bundle / clf.manifest.model_file
        model.write_bytes(model.read_bytes()[:-1] + b"\0")
        with pytest.raises(BundleError, match="changed since it was loaded"):
            clf.replica()


def test_the_daemon_decides_every_frame_the_same_with_two_workers_as_with_one(tmp_path, make_daemon, monkeypatch):
    from daemon_helpers import RecordingOutput

    from edge.config import parse_config
    from edge.daemon import load_from_config
    from edge.runtime import Classifier
    from edge.synth import render_video

    video = tmp_path / "seam.mp4"
    render_video(video, frames=150, seed=3)
    made = []
    original = Classifier.replica
    monkeypatch.setattr(Classifier, "replica", lambda self: made.append(1) or original(self))
    runs = {}
    for workers in (1, 2):
        settings = {
            "source": {"uri": str(video)},
            "gpio": {"enabled": False},
            "snapshots": {"enabled": False, "dir": str(tmp_path / "snaps")},
            "output": {"stdout": False},
            "model": {"workers": workers, "num_threads": 1},
        }
        out = RecordingOutput()
        daemon = make_daemon(parse_config(settings), classifier_loader=load_from_config, outputs=[out])
        summary = daemon.run(threading.Event())
        runs[workers] = (
            [(r.frame_index, r.scores, r.active) for r in out.results],
            [(e.kind, e.label, e.first_frame, e.last_frame, e.frames) for e in out.events],
        )
        assert summary.frames == 150
    assert runs[2] == runs[1]
    assert len(runs[1][1]) >= 2  # the video has defects: the events are not vacuous
    assert made == [1]  # the second interpreter was made once, for the two-worker run
