"""Frames inferred side by side: extra interpreters on the running model for a backlog.

One int8 invoke of a small model is too short to split well across threads (XNNPACK's
threads spend much of it waiting on each other), and an interpreter is not thread-safe. So when
frames queue up faster than one interpreter answers, the loop takes up to ``workers`` of them
at once and each runs whole on an interpreter of its own: the running model answers the first
in the loop's thread, replicas (``model.replica()``, same verified file, fresh interpreter)
answer the others in a small pool. Results come back in frame order, so the debouncer sees
exactly the sequence one interpreter would have given it. At camera pace the queue holds one
frame and nothing changes. A model without ``replica`` (a test double) runs one at a time.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from edge.daemon.protocols import Classifier, Prediction
from edge.errors import PiInspectError

log = logging.getLogger(__name__)


def default_workers() -> int:
    """Interpreters when the config says none: two wherever there are two cores (a second
    brings the gain; more add memory for little), else one."""
    return 2 if (os.cpu_count() or 1) >= 2 else 1


class Replicas:
    """Up to ``count`` frames at once on the model in force; owned by the inference thread."""

    def __init__(self, count: int = 1) -> None:
        self.count = max(1, int(count))
        self._model: Classifier | None = None  # the model the replicas copy
        self._replicas: list[Any] = []
        self._pool: ThreadPoolExecutor | None = None
        self._failed: object | None = None  # the model whose replicas could not be made

    def resize(self, count: int) -> None:
        """A new ``model.workers`` (reload): the replicas are made again on the next batch."""
        count = max(1, int(count))
        if count != self.count:
            self._drop()
            self.count = count

    def predict_many(self, model: Classifier, rgbs: list[np.ndarray]) -> list[Prediction]:
        """Scores for each frame, in order (no feature maps: a snapshot asks for them again)."""
        if len(rgbs) == 1 or self.count == 1:
            return [model.predict(rgb, with_features=False) for rgb in rgbs]
        replicas = self._for(model)
        if not replicas:
            return [model.predict(rgb, with_features=False) for rgb in rgbs]
        futures = [
            self._pool.submit(replica.predict, rgb, False)  # type: ignore[union-attr]
            for replica, rgb in zip(replicas, rgbs[1:], strict=False)
        ]
        first = model.predict(rgbs[0], with_features=False)
        rest = [f.result() for f in futures]
        extra = [model.predict(rgb, with_features=False) for rgb in rgbs[1 + len(futures) :]]
        return [first, *rest, *extra]

    def _for(self, model: Classifier) -> list[Any]:
        if model is self._model:
            return self._replicas
        if model is self._failed:
            return []
        self._drop()
        make = getattr(model, "replica", None)
        if make is None:
            self._failed = model
            return []
        replicas: list[Any] = []
        try:
            for _ in range(self.count - 1):
                replicas.append(make())
        except (PiInspectError, ValueError, RuntimeError, OSError, AttributeError) as exc:
            for replica in replicas:
                replica.close()
            if not isinstance(exc, AttributeError):  # a part that cannot be copied: no news
                log.warning("inferring one frame at a time: a second interpreter failed (%s)", exc)
            self._failed = model
            return []
        self._model, self._replicas = model, replicas
        self._pool = ThreadPoolExecutor(max_workers=len(replicas), thread_name_prefix="infer")
        return replicas

    def _drop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for replica in self._replicas:
            replica.close()
        self._model, self._replicas, self._failed = None, [], None

    def close(self) -> None:
        """Idempotent: the replicas and their pool go; the running model is not theirs to close."""
        self._drop()
