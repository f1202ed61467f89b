"""The console's contract with the daemon: frames only while someone watches, heat maps only on
demand, and a state that carries thresholds and LEDs (acknowledge included)."""

from __future__ import annotations

import threading

from daemon_helpers import (
    ERROR_BGR,
    OK_BGR,
    RecordingOutput,
    ScriptedClassifier,
    script,
    write_video,
)
from gpiozero.pins.mock import MockFactory

from pi_inspect.edge.config import parse_config
from pi_inspect.edge.daemon import Daemon

RED = 27


class Tap:
    """A frame tap that wants frames (and heat maps) only when told to."""

    def __init__(self, watching: bool, heat: bool = False) -> None:
        self.watching, self.heat = watching, heat
        self.asked = 0
        self.frames: list = []

    def wants_frame(self, station: str = "default") -> bool:
        self.asked += 1
        return self.watching

    def wants_heat(self, station: str = "default") -> bool:
        return self.heat

    def offer_frame(self, frame) -> None:
        self.frames.append(frame)


class TapOutput(RecordingOutput):
    def __init__(self, tap: Tap) -> None:
        super().__init__()
        self.frame_tap = tap


def run(tmp_path, colours, *outputs, source=None, **sections):
    video = write_video(tmp_path / "v.avi", colours)
    settings = {
        "source": {"uri": str(video), **(source or {})},
        "gpio": {"red_mode": "hold", "latch": True},
        "snapshots": {"dir": str(tmp_path / "snaps")},
        "stdout": {"enabled": False},
        **sections,
    }
    classifier = ScriptedClassifier()
    daemon = Daemon(
        parse_config(settings),
        outputs=list(outputs),
        pin_factory=MockFactory(),
        classifier_loader=lambda _m: classifier,
    )
    daemon.run(threading.Event())
    return classifier


def test_without_a_viewer_no_live_frame_is_built(tmp_path):
    tap = Tap(watching=False, heat=True)
    classifier = run(tmp_path, script((OK_BGR, 20)), TapOutput(tap))
    assert tap.asked == 20 and tap.frames == []
    assert classifier.calls == 20  # no extra model run for a heat map nobody sees


def test_a_viewer_gets_frames_with_scores_and_a_heat_map_only_when_asked(tmp_path):
    plain, heat = Tap(watching=True), Tap(watching=True, heat=True)
    run(tmp_path, script((OK_BGR, 5)), TapOutput(plain))
    classifier = run(tmp_path, script((OK_BGR, 5)), TapOutput(heat))
    assert [f.index for f in plain.frames] == [0, 1, 2, 3, 4]
    assert all(f.scores and f.heat is None for f in plain.frames)
    assert all(f.heat is not None and f.heat_label for f in heat.frames)
    assert classifier.calls == 10  # each heat map is one more model run, with features


def test_frames_not_inspected_still_reach_the_viewer_without_scores(tmp_path):
    tap = Tap(watching=True)
    run(tmp_path, script((OK_BGR, 4)), TapOutput(tap), trigger={"mode": "demand"})
    assert len(tap.frames) == 4 and all(f.scores is None for f in tap.frames)


def test_the_state_carries_thresholds_and_a_latched_red_with_its_condition_until_acknowledged(
    tmp_path,
):
    class AcknowledgeWhenClean(RecordingOutput):
        """Acknowledges (as the console's button does) once the defect has ended."""

        daemon = None

        def publish_state(self, state) -> None:
            super().publish_state(state)
            if state.verdict == "ok" and state.lamps.get("red"):
                threading.Thread(target=self.daemon.acknowledge).start()

    out = AcknowledgeWhenClean()
    video = write_video(tmp_path / "v.avi", script((OK_BGR, 5), (ERROR_BGR, 6), (OK_BGR, 100)))
    factory = MockFactory()
    daemon = Daemon(
        parse_config(
            {
                "source": {"uri": str(video)},
                "gpio": {"red_mode": "hold", "latch": True},
                "snapshots": {"enabled": False},
                "stdout": {"enabled": False},
                "pipeline": {"queue": 1},
            }
        ),
        outputs=[out],
        pin_factory=factory,
        classifier_loader=lambda _m: _Slow(),
    )
    out.daemon = daemon
    daemon.run(threading.Event())
    assert out.states[0].thresholds == {"error": 0.5, "break": 0.5, "length": 0.5}
    assert out.states[0].alarms["length"] == "below"
    shown = [(s.verdict, s.lamps.get("red")) for s in out.states if s.verdict != "starting"]
    assert ("defect", True) in shown
    latched = shown.index(("ok", True))  # the defect ended, red stays on
    assert shown[latched + 1] == ("ok", False)  # acknowledged
    assert factory.pin(RED).state == 0
    states = [s for s in out.states if s.verdict != "starting"]
    assert states[latched].latched == ("error present",)  # what the latch holds, by name
    assert states[latched + 1].latched == ()


class _Slow(ScriptedClassifier):
    """A frame every few milliseconds, so the acknowledgement lands while the video runs."""

    def predict(self, rgb, with_features=True):
        threading.Event().wait(0.005)
        return super().predict(rgb, with_features)


def loaded_slot():
    from pi_inspect.edge.config import Config
    from pi_inspect.edge.daemon.model import ModelSlot
    from pi_inspect.edge.daemon.status import Faults

    slot = ModelSlot(lambda _m: ScriptedClassifier(), Faults())
    assert slot.try_load(Config())
    return slot


GOOD = {"good": 0.9, "error": 0.1, "break": 0.2, "length": 0.95}


def test_with_nothing_raised_the_heat_map_shown_is_of_the_label_nearest_to_alarming():
    slot = loaded_slot()
    assert slot.top_alarm_label(GOOD, ()) == "break"  # not length: it alarms below 0.5
    assert slot.top_alarm_label({**GOOD, "length": 0.1}, ()) == "length"
    assert slot.top_alarm_label({**GOOD, "error": 0.8}, ()) == "error"


def test_while_a_label_is_raised_the_heat_map_shown_is_of_a_raised_label():
    slot = loaded_slot()
    # length is raised (absent) and held by the debounce: this frame's 0.6 does not alarm,
    # while break (0.45) is nearer to alarming; the viewer still sees length's heat map
    held = {**GOOD, "length": 0.6, "break": 0.45}
    assert slot.top_alarm_label(held, ("length",)) == "length"
    # error alarms on this frame but is not raised yet: the raised length is shown
    assert slot.top_alarm_label({**GOOD, "length": 0.1, "error": 0.9}, ("length",)) == "length"
    # of two raised labels, the one furthest past its threshold
    both = {**GOOD, "length": 0.3, "error": 0.95}
    assert slot.top_alarm_label(both, ("length", "error")) == "error"
    assert slot.top_alarm_label({**both, "length": 0.01}, ("length", "error")) == "length"


def test_a_raised_label_the_model_no_longer_scores_falls_back_to_the_nearest_to_alarming():
    slot = loaded_slot()
    assert slot.top_alarm_label(GOOD, ("scratch",)) == "break"


def test_a_live_viewer_sees_the_heat_map_of_the_raised_label_while_it_is_raised(tmp_path):
    heat = Tap(watching=True, heat=True)
    # error frames raise "error present"; the debounce holds it through 4 clean frames (m = 5)
    # on which break (0.39 against > 0.5) is nearer to alarming than error (0.0)
    near_break = (255, 100, 0)
    run(tmp_path, script((OK_BGR, 3), (ERROR_BGR, 6), (near_break, 8)), TapOutput(heat))
    shown = [frame.heat_label for frame in heat.frames]
    assert shown[5:13] == ["error"] * 8  # raised on the third error frame, held after it
    assert shown[13:] == ["break"] * 4  # the fifth clean frame ended it


def test_the_viewer_sees_the_whole_frame_with_the_region_outlined_or_the_region_with_its_heat_map(
    tmp_path,
):
    region = {"roi": [0.25, 0.25, 0.5, 0.5]}
    plain, heat = Tap(watching=True), Tap(watching=True, heat=True)
    run(tmp_path, script((OK_BGR, 3)), TapOutput(plain), source=region)
    run(tmp_path, script((OK_BGR, 3)), TapOutput(heat), source=region)
    assert all(f.roi == (0.25, 0.25, 0.5, 0.5) for f in plain.frames)
    assert plain.frames[0].image.shape[:2] == (24, 32)  # the camera's whole frame
    assert all(f.roi is None and f.heat is not None for f in heat.frames)
    assert heat.frames[0].image.shape[:2] == (12, 16)  # what the model saw, at full resolution


def test_a_jpeg_cameras_frames_reach_the_viewer_as_they_came(tmp_path):
    tap = Tap(watching=True)
    run(tmp_path, script((OK_BGR, 3)), TapOutput(tap))  # an MJPG AVI: compressed frames
    assert tap.frames and all(f.jpeg[:2] == b"\xff\xd8" and f.image is None for f in tap.frames)
    heat = Tap(watching=True, heat=True)
    run(tmp_path, script((OK_BGR, 3)), TapOutput(heat))
    assert all(f.jpeg is None and f.image is not None for f in heat.frames)
