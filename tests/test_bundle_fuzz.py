"""Mutated bundles: each one loads or is refused with one ``BundleError`` line, never anything else.

A seeded generator mutates the demo bundle the ways a bad copy, a bad tool or an adversary
would: manifest fields deleted, retyped, renested, set to odd numbers and paths; the manifest
text cut or bit-flipped; the model and the golden set truncated, bit-flipped or swapped, with
the hashes rewritten so the damage reaches the runtime. Everything runs in this process with
the real runtime, exactly what the daemon does at start-up and on SIGHUP.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from bundle_helpers import DEMO

from pi_inspect.edge.errors import BundleError
from pi_inspect.edge.runtime import Classifier, load_classifier

CASES = 240
FILES = ("model.tflite", "golden.npz", "model_float32.tflite")

ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**70,
    -(2**70),
    0.5,
    1.5,
    -0.0,
    float("nan"),
    float("inf"),
    "",
    "x",
    "../../../etc/passwd",
    "/etc/passwd",
    "a/b",
    "#",
    "+",
    "$SYS",
    "\0",
    "\ud800",
    "é" * 70,
    "x" * 5000,
    [],
    [1, 2],
    ["a", "a"],
    {},
    {"a": 1},
    {"scores": None},
    [[[[[[]]]]]],
]


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    """Every path to a value inside a JSON document (the large base64 blobs count once)."""
    out = [path] if path else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:6]):
            out += _paths(v, (*path, i))
    return out


def _parent(doc: Any, path: tuple) -> tuple[Any, Any]:
    node = doc
    for key in path[:-1]:
        node = node[key]
    return node, path[-1]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def mutate(
    rng: random.Random, manifest: dict, files: dict[str, bytes]
) -> tuple[str, str, dict[str, bytes], bool]:
    """(what was done, manifest text, file bytes, rehash): one random mutation of a good bundle."""
    doc = copy.deepcopy(manifest)
    files = dict(files)
    rehash = True
    kind = rng.choice(
        [
            "delete",
            "replace",
            "replace",
            "retype",
            "nest",
            "number",
            "text",
            "deep",
            "model",
            "model",
            "golden",
            "swap",
            "stale",
        ]
    )
    what = kind
    if kind in ("delete", "replace", "retype", "nest", "number"):
        path = rng.choice(_paths(doc))
        parent, key = _parent(doc, path)
        what = f"{kind} {'.'.join(map(str, path))}"
        if kind == "delete":
            del parent[key]
        elif kind == "replace":
            parent[key] = rng.choice(ODD_VALUES)
        elif kind == "retype":
            value = parent[key]
            parent[key] = [value] if not isinstance(value, list) else {"v": value}
        elif kind == "nest":
            parent[key] = {"nested": [parent[key]]}
        else:
            parent[key] = "__NUMBER__"
    text = json.dumps(doc, indent=1)
    if "__NUMBER__" in text:
        number = rng.choice(["1e999", "-1e999", "1e-999", "9" * 5000, "0.1e1", "-0", "1E400"])
        text = text.replace('"__NUMBER__"', number)
        what += f" = {number[:12]}"
    if kind == "text":
        raw = bytearray(text.encode())
        if rng.random() < 0.5:
            raw = raw[: rng.randrange(len(raw))]
            what = f"manifest cut to {len(raw)} bytes"
        else:
            for _ in range(rng.randrange(1, 8)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            what = "manifest bytes flipped"
        text = raw.decode("utf-8", "replace")
    elif kind == "deep":
        depth = rng.choice([1000, 100_000])
        text = json.dumps({**doc, "heatmap": "__DEEP__"}).replace('"__DEEP__"', _nested(depth))
        what = f"manifest nested {depth} deep"
    elif kind in ("model", "golden"):
        name = "model.tflite" if kind == "model" else "golden.npz"
        data = bytearray(files[name])
        cut = rng.random() < 0.4
        if cut:
            data = data[: rng.randrange(len(data))]
        else:
            for _ in range(rng.randrange(1, 40)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        files[name] = bytes(data)
        what = f"{name} {'cut to ' + str(len(data)) if cut else 'bytes flipped'}"
    elif kind == "swap":
        a, b = rng.sample(FILES, 2)
        files[a], files[b] = files[b], files[a]
        what = f"{a} and {b} swapped"
    elif kind == "stale":  # damage without rewriting hashes: a copy gone wrong
        name = rng.choice(FILES)
        files[name] = files[name][: len(files[name]) // 2]
        rehash = False
        what = f"{name} halved, hashes left"
    return what, text, files, rehash


def write_case(bundle: Path, text: str, files: dict[str, bytes], rehash: bool) -> None:
    if bundle.exists():
        shutil.rmtree(bundle)
    bundle.mkdir()
    for name, data in files.items():
        (bundle / name).write_bytes(data)
    if rehash:
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("files"), dict):
            doc["files"] = {
                k: hashlib.sha256(files[k]).hexdigest() if k in files else v
                for k, v in doc["files"].items()
            }
            text = json.dumps(doc, indent=1)
    (bundle / "manifest.json").write_text(text, encoding="utf-8", errors="surrogatepass")


@pytest.mark.parametrize("seed", [1, 2])
def test_mutated_bundles_load_or_are_refused_in_one_line(tmp_path, seed):
    manifest = json.loads((DEMO / "manifest.json").read_text())
    originals = {name: (DEMO / name).read_bytes() for name in FILES}
    rng = random.Random(seed)
    outcomes: dict[str, int] = {"loaded": 0, "refused": 0}
    failures = []
    for i in range(CASES // 2):
        what, text, files, rehash = mutate(rng, manifest, originals)
        bundle = tmp_path / "bundle"
        write_case(bundle, text, files, rehash)
        try:
            clf = load_classifier(bundle, num_threads=1)
        except BundleError as exc:
            outcomes["refused"] += 1
            message = str(exc)
            if "\n" in message or not message.strip() or len(message) > 600:
                failures.append(f"case {i} ({what}): not one short line: {message[:200]!r}")
        except Exception as exc:  # the finding this test exists for
            failures.append(f"case {i} ({what}): {type(exc).__name__}: {str(exc)[:200]}")
        else:
            assert isinstance(clf, Classifier)
            outcomes["loaded"] += 1
            clf.close()
    assert failures == []
    # the generator is doing its job: both outcomes happen, most mutations are refused
    assert outcomes["refused"] > CASES // 4 and outcomes["loaded"] > 0, outcomes
