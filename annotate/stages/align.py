"""Tie each clue to the frame the expert was looking at when saying it.

A clue's time is the middle of its word span; its frame is the one nearest that time among the
frames inside [round start, guess time]. Clues said at or after the guess (the reveal: "oh, it
was Key West") are dropped: they are never a clue and never reasoning input.
"""
from __future__ import annotations

import bisect
from dataclasses import replace

from annotate.records import Clue


def clue_time(clue: Clue) -> float | None:
    if clue.start_s is None:
        return clue.end_s
    if clue.end_s is None:
        return clue.start_s
    return (clue.start_s + clue.end_s) / 2


def nearest_frame(frame_times_s: list[float], t: float, start_s: float, guess_s: float) -> int | None:
    """Index (into `frame_times_s`) of the frame nearest `t` among those in [start_s, guess_s]."""
    candidates = [(ft, i) for i, ft in enumerate(frame_times_s) if start_s <= ft <= guess_s]
    if not candidates:
        return None
    candidates.sort()
    times = [ft for ft, _ in candidates]
    pos = bisect.bisect_left(times, t)
    best = min((k for k in (pos - 1, pos) if 0 <= k < len(times)), key=lambda k: (abs(times[k] - t), times[k]))
    return candidates[best][1]


def align_clues(clues: list[Clue], frame_times_s: list[float], start_s: float, guess_s: float) -> list[Clue]:
    """Clues before the guess, each with `frame_index` set (None when the round has no frame in range).

    A clue without any time cannot be placed before or after the reveal, so it is dropped too.
    """
    aligned = []
    for clue in clues:
        t = clue_time(clue)
        if t is None or t >= guess_s or (clue.start_s is not None and clue.start_s >= guess_s):
            continue
        if t < start_s:
            continue
        aligned.append(replace(clue, frame_index=nearest_frame(frame_times_s, t, start_s, guess_s)))
    return aligned
