"""Dynamic batching: one worker thread owns the model and serves a queue, so inference never blocks the event
loop (GET /health answers while a batch runs) and the model is never used by two threads at once.

The worker takes the first queued job, then waits up to `max_wait_s` for more, up to `max_batch` jobs. Score
jobs of a batch become ONE model call (their pairs concatenated, the scores split back); recommend jobs run one
after another (a recommender ranks one user at a time; an LLM run's ranking already encodes each user's shared
prompt prefix once). Answers equal one-at-a-time answers up to float rounding (padding differs between batches).
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

_STOP = object()


@dataclass
class ScoreJob:
    """Pairs already mapped to internal ids (0: unknown, scored by the fallback) by the request's handler."""

    users: np.ndarray
    items: np.ndarray
    future: Future = field(default_factory=Future)


@dataclass
class CallJob:
    """Any other model work (a recommendation): a call run alone in the worker."""

    call: Callable[[], object]
    future: Future = field(default_factory=Future)


@dataclass
class Stats:
    """What /info reports about the batcher since start."""

    batches: int = 0
    requests: int = 0
    pairs_scored: int = 0
    largest_batch: int = 0
    busy: bool = False


class Batcher:
    def __init__(self, rec, max_batch: int, max_wait_s: float):
        self.rec, self.max_batch, self.max_wait_s = rec, max_batch, max_wait_s
        self.stats = Stats()
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="llmrec-model", daemon=True)

    # -- the event loop's side -----------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def submit(self, job):
        """Queue a job; await `asyncio.wrap_future(job.future)` for its answer (cancelling it drops a queued job)."""
        self._queue.put(job)
        return job.future

    def queued(self) -> int:
        return self._queue.qsize()

    def stop(self, timeout: float | None = None) -> None:
        """Answer what is queued, then end the worker (the server calls this after its last request)."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    # -- the worker's side ---------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            batch, stop = [job], False
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                left = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            self._run(batch)
            if stop:
                return

    def _run(self, batch: list) -> None:
        live = [j for j in batch if j.future.set_running_or_notify_cancel()]  # timed-out jobs are skipped
        if not live:
            return
        self.stats.busy = True
        try:
            scores = [j for j in live if isinstance(j, ScoreJob)]
            if scores:
                self._score(scores)
            for job in live:
                if isinstance(job, CallJob):
                    _settle(job.future, job.call)
        finally:
            self.stats.busy = False
            self.stats.batches += 1
            self.stats.requests += len(live)
            self.stats.largest_batch = max(self.stats.largest_batch, len(live))

    def _score(self, jobs: list[ScoreJob]) -> None:
        """One model call for every job's pairs; if it fails, each job alone (one bad job fails only itself)."""
        users = np.concatenate([j.users for j in jobs])
        items = np.concatenate([j.items for j in jobs])
        try:
            scores, cold = self.rec.score_resolved(users, items)
        except BaseException:
            for j in jobs:
                _settle(j.future, lambda j=j: self.rec.score_resolved(j.users, j.items))
            return
        self.stats.pairs_scored += len(users)
        start = 0
        for j in jobs:
            stop = start + len(j.users)
            j.future.set_result((scores[start:stop], cold[start:stop]))
            start = stop


def _settle(future: Future, call: Callable[[], object]) -> None:
    try:
        future.set_result(call())
    except BaseException as exc:  # the handler turns it into a one-line error
        future.set_exception(exc)
