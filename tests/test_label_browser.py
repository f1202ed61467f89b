"""End to end in headless Chromium: keys label frames (every change saved at once, Enter
accepting a suggestion), the trainer reads what was saved."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from browser_helpers import needs_chromium
from label_helpers import make_pulled, make_video, start_server, uncertainty_order

from pi_inspect.edge.data.table import SEED_LABELS, read_dataset, read_table
from pi_inspect.edge.label.sources import open_frames

DOCS = Path(__file__).resolve().parents[1] / "docs"
pytestmark = needs_chromium


@pytest.fixture
def page(browser):
    context = browser.new_context()
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


def open_tool(page, server):
    page.goto(server.url)
    page.wait_for_selector("body[data-ready=true]")


def at_frame(page, index: int, saved: bool):
    page.wait_for_selector(f"body[data-index='{index}'][data-saved='{str(saved).lower()}']")


def expect_values(page, expected: dict[str, bool]) -> None:
    """Wait until the label buttons show ``expected`` (key actions run asynchronously)."""
    script = """(expected) => Object.entries(expected).every(([label, value]) =>
        document.querySelector(`#labels button[data-label="${label}"]`)
            ?.getAttribute("aria-pressed") === String(value))"""
    page.wait_for_function(script, arg=expected)
    shown = {
        b.get_attribute("data-label"): b.get_attribute("aria-pressed") == "true"
        for b in page.query_selector_all("#labels button")
    }
    assert shown == expected


def press(page, keys: str):
    for key in keys:
        page.keyboard.press(key)


def body(page, name: str) -> str:
    return page.evaluate(f"document.body.dataset.{name} || ''")


def table(out) -> dict[str, dict[str, bool]]:
    rows = read_table(out / "labels.csv")
    return {
        p.name: {label: bool(v) for label, v in zip(rows.labels, y, strict=True)}
        for p, y in zip(rows.paths, rows.y, strict=True)
    }


def progress(page) -> tuple[int, int, str]:
    bar = page.locator("#progress")
    text = page.inner_text("#progress-text")
    return int(float(bar.get_attribute("value") or 0)), int(bar.get_attribute("max")), text


def test_keys_label_video_frames_and_the_trainer_reads_the_table(page, tmp_path):
    video = make_video(tmp_path / "seam.mp4", frames=6)
    out = tmp_path / "out"
    with start_server(video, out) as server:
        open_tool(page, server)
        at_frame(page, 0, saved=False)
        assert page.inner_text("#name") == "seam_00000.png"
        assert body(page, "suggested") == ""
        expect_values(page, dict.fromkeys(SEED_LABELS, False))
        press(page, "gl")  # each toggle is saved at once
        expect_values(page, {"good": True, "error": False, "break": False, "length": True})
        at_frame(page, 0, saved=True)
        assert page.inner_text("#status") == "saved"
        press(page, "n")
        at_frame(page, 1, saved=False)
        expect_values(page, dict.fromkeys(SEED_LABELS, False))  # nothing carried over
        press(page, "el")
        expect_values(page, {"good": False, "error": True, "break": False, "length": True})
        at_frame(page, 1, saved=True)
        press(page, "nn")
        at_frame(page, 3, saved=False)
        press(page, "ebl")
        expect_values(page, {"good": False, "error": True, "break": True, "length": True})
        at_frame(page, 3, saved=True)
        page.wait_for_function("document.querySelector('#progress').value === 3")
        assert progress(page) == (3, 6, "3 / 6 labelled")
        press(page, "p")
        at_frame(page, 2, saved=False)
        expect_values(page, dict.fromkeys(SEED_LABELS, False))
        press(page, "p")
        at_frame(page, 1, saved=True)
        expect_values(page, {"good": False, "error": True, "break": False, "length": True})
        strip = page.locator("#strip span")
        assert strip.count() == 6
        assert [strip.nth(i).get_attribute("data-saved") for i in range(6)] == [
            "true", "true", "false", "true", "false", "false",
        ]
        assert page.locator("#strip span[aria-current=true]").get_attribute("data-index") == "1"
        press(page, "q")
        page.wait_for_selector("body[data-stopped=true]")
        server.stopped.wait(5)
        assert server.stopped.is_set()

    assert (out / "labels.csv").read_text().splitlines() == [
        "name,good,error,break,length,source",
        "seam_00000.png,True,False,False,True,seam",
        "seam_00001.png,False,True,False,True,seam",
        "seam_00003.png,False,True,True,True,seam",
    ]
    ds = read_dataset(out)  # what `pi-inspect train --data OUT` reads
    assert ds.task == "multilabel" and ds.labels == SEED_LABELS
    assert ds.paths == [(out / f"seam_{i:05d}.png").absolute() for i in (0, 1, 3)]
    np.testing.assert_array_equal(ds.y, [[1, 0, 0, 1], [0, 1, 0, 1], [0, 1, 1, 1]])
    assert ds.sources == ["seam"] * 3
    frames = open_frames(video)
    for i, path in zip((0, 1, 3), ds.paths, strict=True):
        np.testing.assert_array_equal(cv2.imread(str(path)), frames.read(i))
    frames.close()
    assert sorted(p.name for p in out.iterdir()) == [
        "labels.csv",
        "seam_00000.png",
        "seam_00001.png",
        "seam_00003.png",
    ]


def test_reopening_shows_the_next_unlabelled_frame_and_relabelling_replaces_a_row(page, tmp_path):
    video = make_video(tmp_path / "seam.mp4", frames=6)
    out = tmp_path / "out"
    with start_server(video, out) as server:
        open_tool(page, server)
        press(page, "b")
        at_frame(page, 0, saved=True)
        press(page, "n")
        at_frame(page, 1, saved=False)
        press(page, "eb")
        expect_values(page, {"good": False, "error": True, "break": True, "length": False})
        at_frame(page, 1, saved=True)
    with start_server(video, out) as server:
        open_tool(page, server)
        at_frame(page, 2, saved=False)
        expect_values(page, dict.fromkeys(SEED_LABELS, False))
        press(page, "pp")
        at_frame(page, 0, saved=True)
        expect_values(page, {"good": False, "error": False, "break": True, "length": False})
        press(page, "g")
        expect_values(page, {"good": True, "error": False, "break": True, "length": False})
        at_frame(page, 0, saved=True)
    ds = read_table(out / "labels.csv")
    assert [p.name for p in ds.paths] == ["seam_00000.png", "seam_00001.png"]
    np.testing.assert_array_equal(ds.y, [[1, 0, 1, 0], [0, 1, 1, 0]])


def test_buttons_label_images_into_class_folders(page, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"line_{i}.png"), np.full((20, 30, 3), 60 * i, np.uint8))
    out = tmp_path / "out"
    classes = ("good", "torn")
    with start_server(folder, out, mode="multiclass", labels=classes) as server:
        open_tool(page, server)
        at_frame(page, 0, saved=False)
        expect_values(page, {"good": False, "torn": False})  # no class chosen yet
        page.click("button[data-label=torn]")  # chooses the class and saves it
        expect_values(page, {"good": False, "torn": True})
        at_frame(page, 0, saved=True)
        page.click("#next")
        at_frame(page, 1, saved=False)
        expect_values(page, {"good": False, "torn": False})
        page.keyboard.press("Enter")  # nothing to accept: it says so and stays
        page.wait_for_selector("#message.error")
        assert "choose a class" in page.inner_text("#message")
        at_frame(page, 1, saved=False)
        page.keyboard.press("g")  # keys pick one class in multi-class mode
        expect_values(page, {"good": True, "torn": False})
        at_frame(page, 1, saved=True)
        page.click("#quit")
        page.wait_for_selector("body[data-stopped=true]")
    ds = read_dataset(out)
    assert ds.task == "multiclass" and ds.labels == classes
    assert [p.relative_to(out).as_posix() for p in ds.paths] == [
        "good/line_1.png",
        "torn/line_0.png",
    ]
    np.testing.assert_array_equal(ds.y, [[1, 0], [0, 1]])


KEYS = {"g": "good", "e": "error", "b": "break", "l": "length"}


def test_keyboard_only_labelling_of_30_pulled_samples_with_suggestions_loses_nothing(
    page, tmp_path
):
    """A pulled folder, labelled with the keyboard alone: Enter accepts a suggestion, a toggle
    key saves a change at once, p shows what was saved, a reload resumes where work stopped."""
    order = uncertainty_order(make_pulled(tmp_path / "line-3"))  # what the tool should show
    assert len(order) == 30 and [s.by for s in order[-2:]] == ["operator", "operator"]
    out = tmp_path / "out"
    flips = {3: "b", 8: "l", 21: "e", 28: "e"}  # a toggle key, then n
    expected: dict[str, dict[str, bool]] = {}
    with start_server(tmp_path / "line-3" / "images", out) as server:
        open_tool(page, server)
        for i, sample in enumerate(order):
            name = f"{sample.stem}.png"
            at_frame(page, i, saved=False)
            if i == 15:  # a reload resumes at the first unsaved frame; earlier saves intact
                page.reload()
                page.wait_for_selector("body[data-ready=true]")
                at_frame(page, 15, saved=False)
                assert progress(page) == (15, 30, "15 / 30 labelled")
                if os.environ.get("PI_INSPECT_SCREENSHOTS"):  # docs/learning-loop.md
                    page.screenshot(path=str(DOCS / "label_pulled.png"), full_page=True)
                assert table(out) == expected
                saved_cells = page.locator("#strip span[data-saved=true]")
                assert saved_cells.count() == 15
                assert page.locator("#strip span[aria-current=true]").get_attribute(
                    "data-index"
                ) == "15"
                press(page, "p")
                at_frame(page, 14, saved=True)
                expect_values(page, expected[f"{order[14].stem}.png"])
                press(page, "n")
            at_frame(page, i, saved=False)
            assert page.inner_text("#name") == name
            assert body(page, "suggested") == sample.by
            assert page.inner_text("#status") == (
                "suggested by the model" if sample.by == "model" else "said by the operator"
            )
            expect_values(page, sample.values)
            if i in flips:
                label = KEYS[flips[i]]
                press(page, flips[i])
                expected[name] = dict(sample.values, **{label: not sample.values[label]})
                expect_values(page, expected[name])
                at_frame(page, i, saved=True)
                assert body(page, "suggested") == ""
                press(page, "n")
            elif i == 20:  # two changes, then Enter accepts what is shown
                press(page, "gl")
                expected[name] = dict(
                    sample.values, good=not sample.values["good"], length=not sample.values["length"]
                )
                expect_values(page, expected[name])
                at_frame(page, i, saved=True)
                page.keyboard.press("Enter")
            else:
                expected[name] = dict(sample.values)
                page.keyboard.press("a" if i % 4 == 1 else "Enter")
            if i == 12:  # back one frame: it shows what was saved, not the suggestion
                at_frame(page, 13, saved=False)
                press(page, "p")
                at_frame(page, 12, saved=True)
                expect_values(page, expected[name])
                assert body(page, "suggested") == ""
                press(page, "n")
        at_frame(page, 29, saved=True)  # Enter on the last frame saves it and stays
        page.wait_for_function("document.querySelector('#progress').value === 30")
        assert progress(page) == (30, 30, "30 / 30 labelled")
        press(page, "q")
        page.wait_for_selector("body[data-stopped=true]")
    assert len(expected) == 30
    assert table(out) == expected
    assert len((out / "labels.csv").read_text().splitlines()) == 31
    assert sorted(p.name for p in out.glob("*.png")) == sorted(expected)
