"""Grouped K-fold assignment for evaluation that cannot flatter.

Rounds of one challenge (or of one channel) share a player, a map and often talk about each other,
so they never straddle a train/test split. `grouped_folds` does what scikit-learn's GroupKFold does
(largest groups first, each to the lightest fold) without the dependency, deterministically.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

# how the benchmarks group rows: a challenge nests in its channel, so channel folds are the stricter test
GROUPINGS = ("challenge", "channel")


def row_group(row: dict, grouping: str) -> str:
    """The group of a round row: its `challenge_token` or `channel`, else the id's matching part
    (`channel/challenge/round`), else the id itself (a row alone)."""
    if grouping not in GROUPINGS:
        raise ValueError(f"unknown grouping {grouping!r}; expected one of {GROUPINGS}")
    key = "challenge_token" if grouping == "challenge" else "channel"
    if row.get(key):
        return str(row[key])
    parts = str(row.get("id") or "").split("/")
    if len(parts) >= 3:
        return "/".join(parts[:2]) if grouping == "challenge" else parts[0]
    return str(row.get("id") or id(row))


def grouped_folds(groups: Sequence[str], k: int) -> list[int]:
    """Fold index (0…k'-1) per item, k' = min(k, number of groups); one group's items share a fold."""
    if k < 2:
        raise ValueError(f"--cv needs at least 2 folds, got {k}")
    sizes = Counter(groups)
    k = min(k, len(sizes))
    if k < 2:
        raise ValueError(f"grouped cross-validation needs at least 2 groups, got {len(sizes)}")
    load = [0] * k
    fold_of: dict[str, int] = {}
    for group, size in sorted(sizes.items(), key=lambda gs: (-gs[1], gs[0])):
        fold = min(range(k), key=lambda f: (load[f], f))
        fold_of[group] = fold
        load[fold] += size
    return [fold_of[g] for g in groups]
