"""A request pace shared by every process on the machine (pool workers, Ray tasks, two CLIs).

An in-process limiter (geopy's RateLimiter) keeps one process polite; N worker processes then send
N requests a second. `SharedPace` keeps the time the last request ended in a small file and holds
an exclusive `fcntl` lock on it from the wait to the end of the request, so requests from all
processes arrive at the server at least `interval_s` apart (the next one leaves only `interval_s`
after the previous one was answered).
"""
from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class SharedPace:
    def __init__(self, path: Path | str, interval_s: float):
        self.path = Path(path)
        self.interval_s = float(interval_s)

    @contextmanager
    def turn(self) -> Iterator[float]:
        """Wait for this process's turn, yield the seconds waited; the request goes inside the block."""
        if self.interval_s <= 0:
            yield 0.0
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # callers in every process queue here, one at a time
            try:
                last = float(os.pread(fd, 64, 0).decode() or 0)
            except ValueError:  # a torn or foreign file: start afresh
                last = 0.0
            # wall clock (comparable across processes), capped so a clock set back never stalls callers
            delay = min(max(0.0, last + self.interval_s - time.time()), self.interval_s)
            if delay:
                time.sleep(delay)
            try:
                yield delay
            finally:
                os.ftruncate(fd, 0)
                os.pwrite(fd, repr(time.time()).encode(), 0)
        finally:
            os.close(fd)  # releases the lock
