"""A learned ranker over the countries a round's talk names (conditional logit, numpy only).

The hand-set rule weights of `geoparse` were tuned by reading dev rounds and fit them better than
expert talk in general. Here the same structure of the talk — what kind of name it is, where it
falls (before the guess, at the final commitment, behind a reveal phrase, outside this round),
which cue precedes it (conclusion, negation, comparison, hindsight) — becomes features, and their
weights are fitted by maximum likelihood: each round is one choice among its candidate countries,

    P(country c | round) = softmax_c( Σ_{mentions m of c} φ(m)·w_mention + ψ(c)·w_candidate )

with an L2 penalty whose strength is chosen by grouped cross-validation inside the training rows
(`fit_ranker`). A mention's contribution φ(m)·w_mention is its evidence weight, so a user sees why.
The shipped weights (`geoparse_ranker.json`) were fitted on the dev rounds; benchmarks/geoparse.py
--cv K refits them on training folds only to measure rows the fit never saw.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from annotate import gazetteer
from annotate.stages import geoparse as gp

WEIGHTS_PATH = Path(__file__).with_name("geoparse_ranker.json")

MENTION_FEATURES = ("mention", "name", "demonym", "widespread_language", "city", "region", "position",
                    "outside_round", "early", "after_guess", "after_guess_reveal_cue", "reveal_statement",
                    "surprise", "strong_conclusion", "conclusion", "negated", "comparison", "hindsight",
                    "weak_name", "describes_object", "near_commitment", "before_guess_closeness",
                    "after_guess_closeness", "name_after_guess", "second_half")
CANDIDATE_FEATURES = ("log_mentions", "final_commitment", "last_named", "first_after_reveal", "revealed",
                      "opening_result", "street_view", "last_strong_conclusion", "only_negated",
                      "rule_share", "rule_top")
ALL_FEATURES = MENTION_FEATURES + CANDIDATE_FEATURES
# the hand-set rule scores of `geoparse` were tuned by reading the dev rounds: a ranker without them
# measures what the talk's structure alone is worth on rows nobody read
RULE_FEATURES = ("rule_share", "rule_top")
STRUCTURE_FEATURES = tuple(f for f in ALL_FEATURES if f not in RULE_FEATURES)
NEAR_COMMITMENT_TOKENS = 40
CLOSENESS_TOKENS = 40.0  # a mention this close before the guess point is part of the final commitment


@dataclass
class RoundFeatures:
    """Per candidate country: the feature rows of its mentions and its own features."""

    codes: list[str]
    mention_rows: dict[str, list[tuple[int, np.ndarray]]]  # code → [(id(mention), φ)]
    candidate_rows: dict[str, np.ndarray]  # code → ψ

    def matrix(self) -> np.ndarray:
        """One row per candidate: [Σ φ(m), ψ(c)]."""
        width = len(MENTION_FEATURES)
        rows = []
        for code in self.codes:
            summed = np.sum([phi for _, phi in self.mention_rows[code]], axis=0) if self.mention_rows[code] \
                else np.zeros(width)
            rows.append(np.concatenate([summed, self.candidate_rows[code]]))
        return np.array(rows, dtype=float)


def _mention_vector(m: gp.Mention, talk: gp.RoundTalk) -> np.ndarray:
    tokens, i = talk.tokens, m.token_index
    n = max(len(tokens) - 1, 1)
    start, end = talk.bounds
    guess = talk.guess_index
    before = gp._phrase_before(tokens, i, 4)
    near = gp._phrase_before(tokens, i, 8)
    widespread = gp._widespread(m)
    after_guess = guess is not None and i >= guess
    commitment_end = guess if guess is not None else end
    pos = i / n
    values = {
        "mention": 1.0,
        "name": float(m.kind in ("name", "misspelling") and not widespread),
        "demonym": float(m.kind == "demonym" and not widespread),
        "widespread_language": float(widespread or m.kind == "language"),
        "city": float(m.kind == "city"),
        "region": float(m.kind == "region"),
        "position": pos,
        "outside_round": float(i < start or i >= end),
        "early": float(pos < gp.WEIGHTS.early_stretch),
        "after_guess": float(after_guess),
        "after_guess_reveal_cue": float(after_guess and gp._has_cue(near, gp.REVEAL_CUES)),
        "reveal_statement": float(pos > 0.5 and gp._states_reveal(near)),
        "surprise": float(pos > 0.5 and gp._has_cue(gp._phrase_before(tokens, i, 2), gp.SURPRISE_CUES)),
        "strong_conclusion": float(gp._has_cue(near, gp.STRONG_CONCLUSION)),
        "conclusion": float(gp._has_cue(before, gp.CONCLUSION_CUES)),
        "negated": float(gp._is_negated(tokens, i)),
        "comparison": float(gp._has_cue(gp._phrase_before(tokens, i, 3), gp.COMPARISON_CUES)),
        "hindsight": float(pos > gp.EARLY_HINDSIGHT and gp._has_cue(near, gp.REGRET_CUES)),
        "weak_name": float(m.key in gp.WEAK_NAMES),
        "describes_object": float(m.describes_object),
        "near_commitment": float(not after_guess and 0 <= commitment_end - i <= NEAR_COMMITMENT_TOKENS),
        # how close to the guess point, on a scale of a few sentences: the commitment and the reveal sit there
        "before_guess_closeness": math.exp(-(commitment_end - i) / CLOSENESS_TOKENS) if not after_guess else 0.0,
        "after_guess_closeness": math.exp(-(i - guess) / CLOSENESS_TOKENS) if after_guess else 0.0,
        "name_after_guess": float(after_guess and m.kind in ("name", "misspelling", "demonym") and not widespread),
        "second_half": float(pos > 0.5),
    }
    return np.array([values[f] for f in MENTION_FEATURES], dtype=float)


def _committed(m: gp.Mention, talk: gp.RoundTalk) -> bool:
    """A positive statement of this round's place (not negated, not a shared language, inside the round)."""
    start, end = talk.bounds
    return (start <= m.token_index < end and not gp._widespread(m) and m.kind != "language"
            and not gp._is_negated(talk.tokens, m.token_index))


def round_features(talk: gp.RoundTalk) -> RoundFeatures:
    """Features of every candidate country named in `talk` (see the module docstring)."""
    mention_rows: dict[str, list[tuple[int, np.ndarray]]] = {}
    for m in talk.mentions:
        if m.code is not None:
            mention_rows.setdefault(m.code, []).append((id(m), _mention_vector(m, talk)))
    codes = list(mention_rows)
    guess = talk.guess_index
    before_guess = [m for m in talk.mentions if m.code and _committed(m, talk)
                    and (guess is None or m.token_index < guess)]
    final = before_guess[-1].code if before_guess else None
    last = next((m.code for m in reversed(talk.mentions) if m.code and _committed(m, talk)), None)
    strong = [m.code for m in before_guess
              if gp._has_cue(gp._phrase_before(talk.tokens, m.token_index, 8), gp.STRONG_CONCLUSION)]
    rule = talk.rule_scores
    positive = sum(max(v, 0.0) for v in rule.values()) or 1.0
    rule_top = max(rule, key=rule.get) if rule else None
    candidate_rows = {}
    for code in codes:
        mentions = [m for m in talk.mentions if m.code == code]
        values = {
            "log_mentions": math.log1p(len(mentions)),
            "final_commitment": float(code == final),
            "last_named": float(code == last),
            "first_after_reveal": float(talk.first_after_reveal is not None and talk.first_after_reveal.code == code),
            "revealed": float(talk.revealed is not None and talk.revealed.code == code),
            "opening_result": float(talk.opening is not None and talk.opening.code == code),
            "street_view": float(bool((c := gazetteer.country_by_code(code)) and c.street_view)),
            "last_strong_conclusion": float(bool(strong) and strong[-1] == code),
            "only_negated": float(all(gp._is_negated(talk.tokens, m.token_index) for m in mentions)),
            "rule_share": max(rule.get(code, 0.0), 0.0) / positive,
            "rule_top": float(code == rule_top),
        }
        candidate_rows[code] = np.array([values[f] for f in CANDIDATE_FEATURES], dtype=float)
    return RoundFeatures(codes, mention_rows, candidate_rows)


@dataclass
class CandidateRanker:
    """Linear scores over [Σ mention features, candidate features]; softmax within a round."""

    weights: np.ndarray  # one per name in `feature_names`
    l2: float = 1.0
    fitted_on: int = 0  # rounds with the truth among the candidates
    feature_names: tuple[str, ...] = ALL_FEATURES

    def full_weights(self) -> np.ndarray:
        """Weights over ALL_FEATURES (0 for the features this ranker leaves out)."""
        named = dict(zip(self.feature_names, self.weights))
        return np.array([named.get(f, 0.0) for f in ALL_FEATURES])

    def scores(self, features: RoundFeatures) -> dict[str, float]:
        if not features.codes:
            return {}
        return dict(zip(features.codes, (features.matrix() @ self.full_weights()).tolist()))

    def mention_contributions(self, features: RoundFeatures) -> dict[int, float]:
        """id(mention) → its share of its country's score (φ(m)·w_mention)."""
        w = self.full_weights()[:len(MENTION_FEATURES)]
        return {key: float(phi @ w) for rows in features.mention_rows.values() for key, phi in rows}

    @staticmethod
    def probabilities(scores: dict[str, float]) -> dict[str, float]:
        top = max(scores.values())
        exp = {c: math.exp(s - top) for c, s in scores.items()}
        total = sum(exp.values())
        return {c: v / total for c, v in exp.items()}

    def to_json(self) -> dict:
        return {"model": "conditional-logit", "l2": self.l2, "fitted_on": self.fitted_on,
                "weights": dict(zip(self.feature_names, (round(float(w), 6) for w in self.weights)))}

    @classmethod
    def from_json(cls, data: dict, source: str = "ranker weights") -> CandidateRanker:
        weights = data.get("weights")
        if not isinstance(weights, dict) or not weights:
            raise ValueError(f"{source}: no 'weights' object")
        unknown = [n for n in weights if n not in ALL_FEATURES]
        if unknown:
            raise ValueError(f"{source}: unknown features {unknown}")
        names = tuple(f for f in ALL_FEATURES if f in weights)
        return cls(np.array([float(weights[n]) for n in names]), float(data.get("l2", 1.0)),
                   int(data.get("fitted_on", 0)), names)


def _choice_sets(examples: Sequence[tuple[RoundFeatures, str | None]],
                 columns: Sequence[int]) -> list[tuple[np.ndarray, int]]:
    """(candidate matrix, index of the truth) for rounds whose truth was named; the others teach nothing."""
    sets = []
    for features, truth in examples:
        if truth in features.codes:
            sets.append((features.matrix()[:, list(columns)], features.codes.index(truth)))
    return sets


def _fit_weights(sets: list[tuple[np.ndarray, int]], l2: float, iterations: int = 50) -> np.ndarray:
    """Newton's method on the L2-penalised conditional-logit likelihood (concave: it converges)."""
    width = sets[0][0].shape[1]
    w = np.zeros(width)
    for _ in range(iterations):
        grad = -l2 * w
        hess = -l2 * np.eye(width)
        for x, y in sets:
            s = x @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            mean = p @ x
            grad += x[y] - mean
            centred = x - mean
            hess -= (centred * p[:, None]).T @ centred
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w


L2_GRID = (0.3, 1.0, 3.0, 10.0)


def fit_ranker(examples: Sequence[tuple[RoundFeatures, str | None]], groups: Sequence[str] | None = None,
               l2_grid: Sequence[float] = L2_GRID, inner_folds: int = 4,
               feature_names: Sequence[str] = ALL_FEATURES) -> CandidateRanker:
    """Fit the ranker on (features, true code) pairs. With `groups` (one per example, e.g. challenge
    tokens) the L2 strength is the grid value with the best grouped inner cross-validated accuracy
    (folds of the training rows only); without, the middle of the grid."""
    from annotate.folds import grouped_folds

    unknown = [f for f in feature_names if f not in ALL_FEATURES]
    if unknown:
        raise ValueError(f"unknown ranker features {unknown}")
    columns = [ALL_FEATURES.index(f) for f in feature_names]
    sets_all = _choice_sets(examples, columns)
    if not sets_all:
        raise ValueError("no training round names its true country: nothing to fit the ranker on")
    l2 = l2_grid[len(l2_grid) // 2]
    if groups is not None and len(set(groups)) >= inner_folds:
        folds = grouped_folds(groups, inner_folds)
        best = None
        for candidate in l2_grid:
            correct = 0
            for fold in range(inner_folds):
                train = [examples[i] for i in range(len(examples)) if folds[i] != fold]
                test = [examples[i] for i in range(len(examples)) if folds[i] == fold]
                train_sets = _choice_sets(train, columns)
                if not train_sets:
                    continue
                w = _fit_weights(train_sets, candidate)
                for x, y in _choice_sets(test, columns):
                    correct += int(np.argmax(x @ w) == y)
            if best is None or correct > best[0]:
                best = (correct, candidate)
        l2 = best[1]
    return CandidateRanker(_fit_weights(sets_all, l2), l2, len(sets_all), tuple(feature_names))


def load_ranker(path: Path) -> CandidateRanker:
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"ranker weights {path}: unreadable ({exc})") from exc
    return CandidateRanker.from_json(data, str(path))


@lru_cache(maxsize=1)
def default_ranker() -> CandidateRanker | None:
    """The shipped weights, or None (rule scores) when the file is absent."""
    return load_ranker(WEIGHTS_PATH) if WEIGHTS_PATH.exists() else None
