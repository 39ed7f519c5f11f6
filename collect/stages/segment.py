"""`segment`: cut a video into GeoGuessr rounds at the result screens (the NAVIG recipe).

The paper sampled a frame every 6 s and read the result screen ("Next"/"End" button,
score) with OCR. We do the same, cheaply, and on the real game's look:

1. one ffmpeg pass pulls a frame at least every `sample_every` s, scaled by ffmpeg to
   `ocr_max_side`. Where the stream's keyframes are that dense (YouTube: 2–5 s GOPs) it decodes
   keyframes only, else ffmpeg's select filter passes one frame per interval. Python crops two
   regions: the HUD bar (top right) and the result panel (bottom centre);
2. OCR reads the HUD first (`MAP World | ROUND 2/5 | SCORE 4,987` in any OCR form, see
   `collect.screen_text`) ⇒ gameplay of round 2 with a running score of 4,987; only frames
   without a HUD get the (bigger) result-panel OCR: "4,874 points" with "12 km" or a NEXT ROUND /
   VIEW SUMMARY button ⇒ a round's result screen ("0 points" and a button: timed out); "GAME
   SUMMARY", "PLAY AGAIN", a total ⇒ the end-of-game summary, never a round. OCR runs as the
   samples arrive, while ffmpeg decodes the next ones;
3. where the HUD counter says rounds went by between two samples (i → j with fewer than j − i
   result screens between: short rounds, a quick click), that stretch is read densely;
4. result-like screens that are no round's are refused, each with its reason: before any
   gameplay (an intro's highlight), across which the counter does not move (a sponsor card), after
   the summary or the last round's VIEW SUMMARY;
5. every state change is refined by a binary search over frames `refine_step` apart
   between the two samples around it (one ffmpeg call per change, lazy OCR);
6. rounds = result screens in order: guess_s = first result frame, start_s = first
   gameplay frame of that round (else the end of the previous result screen, a "Round k"
   chapter or a "round two" / "next round" caption), end_s = next round's start.

The HUD counter, the HUD score, the result screen and the transcript are independent readings:
each round lists what supports it (`evidence`) and where they part (`disagreements`: a spoken
round number that is not the counter's, a score rise that is not the result's points, a counter
that skips). A video where no result screen is found fails honestly ("no result screens
detected", with what was refused); an unreadable/truncated file fails with ffmpeg's message.
"""
from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from collect import layout
from collect.config import SegmentConfig
from naviclues.fsutil import atomic_write_json, inside, read_json
from collect.records import RoundSpan, Transcript, from_dict, to_dict
from collect.stages.base import Stage, StageOutcome, VideoContext
from collect.screen_text import (Hud, ScreenReading, parse_counter, parse_distance_km, parse_hud,  # noqa: F401
                                 parse_points, read_result_screen)
from collect.video import (VideoError, VideoInfo, frames_in_windows, probe, sample_every,
                           sample_keyframes)

# Regions read by OCR, as fractions (x0, y0, x1, y1) of the frame: GeoGuessr's status bar
# sits top right; the score, distance and NEXT button of the result screen bottom centre.
COUNTER_REGION = (0.62, 0.0, 1.0, 0.17)
RESULT_REGION = (0.12, 0.46, 0.88, 1.0)

NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty".split())}
_NUM = r"(\d{1,2}|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + ")"
_TRANSCRIPT_CUE = re.compile(rf"\b(?:(next|last|final) round|round {_NUM})\b", re.I)
_CHAPTER_ROUND = re.compile(rf"\bround\s*{_NUM}\b", re.I)
_LONE_POINTS = re.compile(r"p\s*[o0]\s*[i1l]\s*n\s*t\s*[s5]?", re.I)
# a spoken round number this close to a round's start is about that round (farther away it may
# be a look back: "round two was brutal")
CUE_NEAR_START_S = 15.0


# --------------------------------------------------------------------------- observations
@dataclass
class Observation:
    time: float
    kind: str  # "play" | "result" | "summary" | "other"
    round: int | None = None
    total: int | None = None
    points: int | None = None
    distance_km: float | None = None
    text: str = ""
    score: int | None = None  # the HUD's running game score (gameplay frames)
    button: str | None = None  # the result screen's button (NEXTROUND, VIEWSUMMARY…)
    why: str = ""  # for a summary: what gave it away


@dataclass
class OcrStats:
    calls: int = 0
    seconds: float = 0.0


def _crop(frame: np.ndarray, region: tuple[float, float, float, float]) -> np.ndarray:
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = region
    return frame[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)].copy()


def _crops(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _crop(frame, COUNTER_REGION), _crop(frame, RESULT_REGION)


class Reader:
    """OCR of the two regions, with a look-alike cache and timing.

    Within one round the counter box (and a result screen) hardly changes between
    samples, so a crop that matches a recently read crop pixel for pixel (≤ a few pixels
    differing by > 48 grey levels; a changed digit differs by dozens) reuses that reading.
    This removes most OCR calls, including nearly all of the refinement probes. The cache
    holds a few dozen readings (most recent first, so hits are found early): refinement runs
    after all samples are read and probes every round again, so a cache of only the last few
    readings would OCR each round's counter twice.
    """

    CACHE_SIZE = 40

    def __init__(self) -> None:
        self.stats = OcrStats()
        self.cache_hits = 0
        self._recent: dict[str, list[tuple[np.ndarray, object]]] = {"counter": [], "result": []}
        self.results_under_hud = False  # read the result panel of frames with a HUD too

    def _ocr(self, image: np.ndarray) -> list:
        """OCR lines (text and box) of one crop."""
        from collect import ocr

        t0 = time.perf_counter()
        found = ocr.read_text(image)
        lines = list(found)
        for i, line in enumerate(found):
            if _LONE_POINTS.fullmatch(line.text.strip()):
                # the detector lost the number before "points" (a lone "0" gets boxed as a dot):
                # recognise the line again with room on its left
                x0, y0, x1, y1 = line.box
                h = y1 - y0
                strip = image[max(0, int(y0 - 0.3 * h)):int(y1 + 0.3 * h), max(0, int(x0 - 4 * h)):int(x1) + 1]
                again = ocr.recognize(strip)
                if again and parse_points(again) is not None:
                    lines[i] = replace(line, text=again)
        self.stats.calls += 1
        self.stats.seconds += time.perf_counter() - t0
        return lines

    def _read(self, kind: str, image: np.ndarray, parse: Callable[[list[str]], object]) -> object:
        grey = image.astype(np.int16).sum(axis=2) // 3
        limit = max(4, int(0.0003 * grey.size))
        recent = self._recent[kind]
        for i, (seen, value) in enumerate(recent):
            if seen.shape == grey.shape and int((np.abs(seen - grey) > 48).sum()) <= limit:
                recent.insert(0, recent.pop(i))
                self.cache_hits += 1
                return value
        value = parse(self._ocr(image))
        recent.insert(0, (grey, value))
        del recent[self.CACHE_SIZE:]
        return value

    def hud(self, crops) -> Hud | None:
        """The HUD bar's reading (round counter, running score), None without a counter."""
        if "hud" not in crops:
            crops["hud"] = self._read("counter", crops["counter_img"],
                                      lambda lines: parse_hud(" ".join(line.text for line in lines)))
        return crops["hud"]

    def counter(self, crops) -> tuple[int, int] | None:
        hud = self.hud(crops)
        return (hud.round, hud.total) if hud else None

    def screen(self, crops) -> ScreenReading:
        if "screen" not in crops:
            crops["screen"] = self._read("result", crops["result_img"], read_result_screen)
        return crops["screen"]

    def result(self, crops) -> ScreenReading | None:
        """The frame's round result (points, distance), None unless it is a round's result screen."""
        screen = self.screen(crops)
        return screen if screen.kind == "result" else None

    def observe(self, t: float, crops) -> Observation:
        hud = self.hud(crops)
        if hud and self.results_under_hud:  # a layout that keeps the HUD on result screens
            if (res := self.result(crops)) is not None:
                return Observation(t, "result", round=hud.round, total=hud.total, points=res.points,
                                   distance_km=res.distance_km, text=res.text, button=res.button)
        if hud:
            return Observation(t, "play", round=hud.round, total=hud.total, score=hud.score)
        screen = self.screen(crops)
        if screen.kind == "result":
            return Observation(t, "result", points=screen.points, distance_km=screen.distance_km, text=screen.text,
                               button=screen.button)
        return Observation(t, screen.kind, text=screen.text, why=screen.why)


def _as_crops(frame: np.ndarray) -> dict:
    counter, result = _crops(frame)
    return {"counter_img": counter, "result_img": result}


def _round_of(reader: Reader, crops) -> int | None:
    counter = reader.counter(crops)
    return counter[0] if counter else None


# --------------------------------------------------------------------------- refinement
def _first_true(items: list, predicate: Callable[[dict], bool]) -> int | None:
    """Index of the first item where predicate holds, assuming false…false true…true."""
    lo, hi, found = 0, len(items) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        if predicate(items[mid][1]):
            found, hi = mid, mid - 1
        else:
            lo = mid + 1
    return found


@dataclass
class Boundary:
    before: float  # a sample on the old side
    after: float  # a sample on the new side (known to satisfy the predicate)
    predicate: Callable[[dict], bool]
    frames: list = field(default_factory=list)
    time: float | None = None


def _refine(path: Path, info: VideoInfo, boundaries: list[Boundary], step: float, max_side: int,
            after_crops: dict[float, dict]) -> None:
    """Fill each boundary's `time` with the first frame (≤ step apart) on the new side."""
    todo = [b for b in boundaries if b.after - b.before > step + 1e-6]
    groups = [list(np.arange(b.before + step, b.after - 1e-6, step)) for b in todo]
    for b, frames in zip(todo, frames_in_windows(path, groups, max_side=max_side, info=info, transform=_as_crops)):
        b.frames = [(t, c) for t, c in frames if b.before < t < b.after]
    for b in boundaries:
        items = b.frames + [(b.after, after_crops[b.after])]
        idx = _first_true(items, b.predicate)
        b.time = items[idx][0] if idx is not None else b.after


# --------------------------------------------------------------------------- cues
@dataclass(frozen=True)
class Cue:
    time: float
    round: int | None  # None for "next round"
    text: str
    source: str  # "transcript" | "chapter"


def transcript_cues(transcript: Transcript | None) -> list[Cue]:
    if transcript is None:
        return []
    words = [w for w in transcript.words() if w.text and not w.text.startswith("[")]
    text, starts = "", []
    for w in words:  # char offset → word start time
        starts.append((len(text), w.start))
        text += re.sub(r"[^\w' ]", "", w.text.lower()) + " "
    cues = []
    for m in _TRANSCRIPT_CUE.finditer(text):
        t = max(s for off, s in starts if off <= m.start())
        number = m.group(2)
        k = None if number is None else (int(number) if number.isdigit() else NUMBER_WORDS[number.lower()])
        cues.append(Cue(round(t, 2), k, m.group(0), "transcript"))
    return cues


def chapter_cues(chapters: list[dict] | None) -> list[Cue]:
    cues = []
    for ch in chapters or []:
        m = _CHAPTER_ROUND.search(str(ch.get("title") or ""))
        if m and ch.get("start_time") is not None:
            number = m.group(1)
            k = int(number) if number.isdigit() else NUMBER_WORDS[number.lower()]
            cues.append(Cue(float(ch["start_time"]), k, str(ch["title"])[:60], "chapter"))
    return cues


# --------------------------------------------------------------------------- segmentation
@dataclass
class SegmentResult:
    rounds: list[RoundSpan]
    observations: list[Observation]
    duration_s: float
    ocr: OcrStats
    seconds: dict[str, float]
    ocr_cache_hits: int = 0
    sampling: str = "every-frame"  # "keyframes" when the coarse samples were keyframes only
    refused: list[str] = field(default_factory=list)  # result-like screens that were not a round's, and why


class SegmentationError(RuntimeError):
    pass


def _consensus(values: list) -> object:
    """The most frequent reading; among equally frequent ones the latest (a score that counts up
    on screen shows its final value last)."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    counts = Counter(values)
    best = max(counts.values())
    return next(v for v in reversed(values) if counts[v] == best)


def _result_runs(obs: list[Observation], counters_seen: bool, every: float) -> list[list[Observation]]:
    """Consecutive result samples; with a HUD in the video, runs not separated by gameplay are one
    screen (a sponsor spot or a cut to the streamer inside a result screen does not split it)."""
    runs: list[list[Observation]] = []
    last_kind_between = None
    for o in obs:
        if o.kind == "result":
            if runs and last_kind_between not in ("play", "summary") and (
                    counters_seen or o.time - runs[-1][-1].time <= 2 * every):
                runs[-1].append(o)
            else:
                runs.append([o])
            last_kind_between = None
        elif o.kind in ("play", "summary"):
            last_kind_between = o.kind
    return runs


def _refuse_non_rounds(obs: list[Observation], runs: list[list[Observation]], counters_seen: bool,
                       counter_on_results: bool) -> tuple[list[list[Observation]], list[str]]:
    """Drop result-looking runs that cannot be a round's result screen, saying why.

    With a HUD counter in the video: a round's result screen follows that round's gameplay (a
    result-like screen before any gameplay is the intro's), and the counter moves on after it (a
    result-like sponsor card inside a round leaves the counter where it was). In any video: nothing
    after the end-of-game summary or the last round's VIEW SUMMARY, before gameplay resumes, is a round.
    """
    kept, refused = [], []
    for n, run in enumerate(runs):
        first, last = run[0].time, run[-1].time
        before = [o for o in obs if o.time < first]
        after = [o for o in obs if o.time > last]
        plays_before = [o for o in before if o.kind == "play"]
        since_play = before[before.index(plays_before[-1]) + 1:] if plays_before else before
        prev = kept[-1] if kept else None
        why = None
        if counters_seen and not plays_before:
            why = "no gameplay with a round counter before it (intro)"
        elif any(o.kind == "summary" for o in since_play):
            why = "follows the end-of-game summary"
        elif prev is not None and any(o.button == "VIEWSUMMARY" for o in prev) and not any(
                prev[-1].time < o.time < first for o in plays_before):
            why = "after the last round's VIEW SUMMARY, no gameplay since"
        elif counters_seen and plays_before:
            next_play = next((o for o in after if o.kind == "play"), None)
            if next_play is not None and next_play.round == plays_before[-1].round:
                why = f"the round counter stays at {next_play.round} across it (not a round's end)"
        if why:
            refused.append(f"result-like screen {first:.1f}-{last:.1f} s: {why}")
        else:
            kept.append(run)
    return kept, refused


def _summaries(obs: list[Observation]) -> list[str]:
    out, last = [], None
    for o in obs:
        if o.kind == "summary":
            if last is None or o.time - last > 0:
                if out and last is not None and out[-1][1] == last:
                    out[-1] = (out[-1][0], o.time, out[-1][2])
                else:
                    out.append((o.time, o.time, o.why))
            last = o.time
        elif o.kind != "other":
            last = None
    return [f"end-of-game summary {a:.1f}-{b:.1f} s ({why})" for a, b, why in out]


def segment_video(path: Path | str, config: SegmentConfig | None = None, transcript: Transcript | None = None,
                  chapters: list[dict] | None = None) -> SegmentResult:
    """Find the rounds of one video. Raises VideoError (unreadable) or SegmentationError (none found)."""
    config = config or SegmentConfig()
    path = Path(path)
    clock = {"probe": time.perf_counter()}
    info = probe(path)
    step, every = float(config.refine_step), float(config.sample_every)
    max_side = int(config.ocr_max_side)
    clock["sample_ocr"] = time.perf_counter()
    complaints: list[str] = []
    reader = Reader()

    def read_sample(frame: np.ndarray) -> dict:
        # OCR each sample as it arrives, while ffmpeg decodes the next ones; the readings stay
        # in the crops dict, so `observe` below only assembles them
        crops = _as_crops(frame)
        reader.observe(0.0, crops)
        return crops

    # keyframes alone when they are dense enough (no inter-frame decoding), else every frame
    samples = sample_keyframes(path, every, max_side=max_side, info=info, transform=read_sample)
    sampling = "keyframes" if samples is not None else "every-frame"
    if samples is None:
        samples = sample_every(path, every, max_side=max_side, info=info, transform=read_sample,
                               diagnostics=complaints)
    said = f"; ffmpeg: {' | '.join(complaints[-2:])[:300]}" if complaints else ""
    if not samples:
        raise VideoError(f"{path.name}: ffmpeg decoded no frames{said}")
    if samples[-1][0] < info.duration_s - 2 * every - 1.0:
        raise VideoError(f"{path.name}: decoded frames stop at {samples[-1][0]:.1f} s of the "
                         f"{info.duration_s:.1f} s the container reports (truncated or corrupt file){said}")
    clock["ocr"] = time.perf_counter()
    crops_at = {t: c for t, c in samples}
    obs = [reader.observe(t, c) for t, c in samples]
    counters_seen = any(o.kind == "play" for o in obs)
    # Some layouts keep the status bar on the result screen: if the counter is everywhere
    # and no result screen was found, read the result panel of the counter frames too.
    counter_on_results = False
    if counters_seen and not any(o.kind == "result" for o in obs):
        reader.results_under_hud = True
        obs = [reader.observe(t, c) for t, c in samples]
        counter_on_results = any(o.kind == "result" for o in obs)
        reader.results_under_hud = counter_on_results

    runs = _result_runs(obs, counters_seen, every)
    clock["dense"] = time.perf_counter()
    scan_step, scanned = min(every, max(step, SCAN_STEP_S)), set()
    for _ in range(2):  # a second pass only where the first one's findings still leave rounds unseen
        if not (counters_seen and _scan_gaps(path, info, obs, runs, max_side, reader, crops_at, scan_step,
                                             scanned)):
            break
        runs = _result_runs(obs, counters_seen, every)
    runs, refused = _refuse_non_rounds(obs, runs, counters_seen, counter_on_results)
    refused = _summaries(obs) + refused
    if not runs:
        seen = Counter(o.kind for o in obs)
        raise SegmentationError(
            f"no result screens detected in {len(obs)} frames sampled every {every:g} s "
            f"({seen.get('play', 0)} with a round counter, {seen.get('other', 0)} unrecognised"
            + (f"; refused: {'; '.join(refused)[:300]}" if refused else "") + ")")

    # boundaries to refine: into each result run, into each round's gameplay, out of results
    clock["refine"] = time.perf_counter()
    index_of = {o.time: i for i, o in enumerate(obs)}
    boundaries: dict[tuple[str, int], Boundary] = {}
    plans = []
    prev_run_end_idx = -1
    for n, run in enumerate(runs):
        first_idx = index_of[run[0].time]
        between = obs[prev_run_end_idx + 1:first_idx]
        play_rounds = [o.round for o in between if o.kind == "play"]
        # the round being played just before the result (a refused sponsor card may split a round)
        last_play = next((o for o in reversed(between) if o.kind == "play"), None)
        k = last_play.round if last_play is not None else None
        plan = {"run": run, "k": k, "between": between, "first_idx": first_idx,
                "prev_end_idx": prev_run_end_idx, "play_rounds": play_rounds}
        if k is None and counter_on_results:
            k = _consensus([o.round for o in run])
            plan["k_from_result"] = k
        if first_idx > 0:
            before = obs[first_idx - 1]
            if counter_on_results:
                pred = (lambda c: reader.result(c) is not None)
            elif before.kind == "play":
                pred = (lambda c, r=before.round: _round_of(reader, c) != r and reader.result(c) is not None)
            else:
                pred = (lambda c: reader.counter(c) is None and reader.result(c) is not None)
            boundaries[("guess", n)] = Boundary(before.time, run[0].time, pred)
        first_play = next((o for o in between if o.kind == "play" and o.round == k), None) if k else None
        if first_play is not None:
            fp_idx = index_of[first_play.time]
            if fp_idx > 0:
                boundaries[("start", n)] = Boundary(
                    obs[fp_idx - 1].time, first_play.time,
                    lambda c, r=k: _round_of(reader, c) == r and (
                        not counter_on_results or reader.result(c) is None))
            plan["first_play"] = first_play
        last_idx = index_of[run[-1].time]
        if last_idx + 1 < len(obs):
            nxt = obs[last_idx + 1]
            if counter_on_results:
                pred = (lambda c: reader.result(c) is None)
            elif nxt.kind == "play":
                pred = (lambda c, r=nxt.round: _round_of(reader, c) == r)
            else:
                pred = (lambda c: reader.counter(c) is not None or reader.result(c) is None)
            boundaries[("result_end", n)] = Boundary(run[-1].time, nxt.time, pred)
        prev_run_end_idx = last_idx
        plans.append(plan)
    _refine(path, info, list(boundaries.values()), step, max_side, crops_at)

    clock["assemble"] = time.perf_counter()
    cues = transcript_cues(transcript) + chapter_cues(chapters)
    rounds: list[RoundSpan] = []
    hud_scores: list[int | None] = []
    for n, plan in enumerate(plans):
        run = plan["run"]
        evidence, disagreements = [], []
        guess_b = boundaries.get(("guess", n))
        guess_s = guess_b.time if guess_b else run[0].time
        evidence.append(f"ocr:result@{guess_s:.1f}")
        k = plan["k"]
        plays = [o for o in plan["between"] if o.kind == "play" and o.round == k]
        if plan.get("first_play") is not None:
            total = _consensus([o.total for o in plays])
            evidence.append(f"ocr:round-counter {k}/{total}@{plan['first_play'].time:.1f}")
            others = sorted({r for r in plan["play_rounds"] if r != k})
            if others:
                disagreements.append(f"round counter also read {others} before this result screen (kept {k}, "
                                     f"the last one read)")
        elif plan.get("k_from_result") is not None:
            evidence.append(f"ocr:round-counter {k} on result screen@{run[0].time:.1f}")
        hud_scores.append(_consensus([o.score for o in plays]) if plays else None)
        prev_guess = rounds[-1].guess_s if rounds else 0.0
        window_cues = [c for c in cues if prev_guess < c.time < guess_s]
        hud_k = k
        if k is None:
            numbered = [c for c in window_cues if c.round is not None]
            in_order = rounds[-1].round + 1 if rounds else 1
            k = numbered[0].round if numbered else in_order
            if numbered and k != in_order:
                disagreements.append(f"{numbered[0].source} names round {k} ('{numbered[0].text}'@"
                                     f"{numbered[0].time:.1f}) where the order of result screens gives {in_order}")
        elif rounds and k != rounds[-1].round + 1:
            disagreements.append(f"round counter reads {k} after round {rounds[-1].round}")
        start_b = boundaries.get(("start", n))
        if start_b:
            start_s = start_b.time
        elif (chapter := next((c for c in window_cues if c.source == "chapter" and c.round == k), None)):
            start_s = chapter.time
        elif n > 0 and boundaries.get(("result_end", n - 1)):
            start_s = boundaries[("result_end", n - 1)].time
            evidence.append(f"ocr:result-ended@{start_s:.1f}")
        elif (spoken := next((c for c in window_cues if c.source == "transcript"), None)):
            start_s = spoken.time
        else:
            start_s = 0.0 if n == 0 else rounds[-1].guess_s
            evidence.append("fallback:" + ("video-start" if n == 0 else "previous-guess"))
        for c in window_cues:
            if abs(c.time - start_s) > max(3 * every, CUE_NEAR_START_S):
                continue
            if c.round in (k, None):
                evidence.append(f"{c.source}:'{c.text}'@{c.time:.1f}" if c.source == "transcript"
                                else f"chapter:{c.text}")
            elif hud_k is not None:  # the transcript is independent of the HUD: say where they part
                disagreements.append(f"{c.source} names round {c.round} ('{c.text}'@{c.time:.1f}) "
                                     f"where the round counter reads {hud_k}")
        readings = [o.points for o in run if o.points is not None]
        points = _consensus(readings)
        distance = _consensus([o.distance_km for o in run])
        if len(set(readings)) > 1:
            disagreements.append(f"result screen read as {sorted(set(readings))} points (kept {points}, "
                                 "the most frequent / last)")
        if points is not None:
            evidence.append(f"ocr:points {points}@{run[0].time:.1f}")
        elif any(o.points is None and o.distance_km is None for o in run):
            pass
        if distance is not None:
            evidence.append(f"ocr:distance {distance:g} km@{run[0].time:.1f}")
        elif points == 0:
            evidence.append("ocr:no distance shown (timed out, no guess)")
        if rounds:
            rounds[-1].end_s = min(max(start_s, rounds[-1].guess_s), rounds[-1].end_s)
        start_s = min(start_s, guess_s)
        rounds.append(RoundSpan(round=int(k), start_s=round(start_s, 3), guess_s=round(guess_s, 3),
                                end_s=round(info.duration_s, 3), points=points, distance_km=distance,
                                evidence=evidence, disagreements=disagreements))
    _check_score_deltas(rounds, hud_scores)
    clock["end"] = time.perf_counter()
    names = list(clock)
    seconds = {names[i]: round(clock[names[i + 1]] - clock[names[i]], 3) for i in range(len(names) - 1)}
    return SegmentResult(rounds, obs, info.duration_s, reader.stats, seconds, reader.cache_hits, sampling, refused)


def _check_score_deltas(rounds: list[RoundSpan], hud_scores: list[int | None]) -> None:
    """The HUD's running score rises by each round's points: a second reading of them.

    Where the result screen's points were unreadable the rise stands in (said in the evidence);
    where both exist and differ, the round records it."""
    for i in range(len(rounds) - 1):
        before, after = hud_scores[i], hud_scores[i + 1]
        if before is None or after is None or rounds[i + 1].round != rounds[i].round + 1:
            continue
        rise = after - before
        span = rounds[i]
        if span.points is None and 0 <= rise <= 5000:
            span.points = rise
            span.evidence.append(f"ocr:hud-score rose {before}→{after} (result screen points unreadable)")
        elif span.points is not None and rise != span.points:
            span.disagreements.append(f"result screen reads {span.points} points but the HUD score rose "
                                      f"{before}→{after} (+{rise})")
        elif span.points is not None:
            span.evidence.append(f"ocr:hud-score +{rise}")


def _gaps_to_scan(obs: list[Observation], runs: list[list[Observation]]) -> list[tuple[float, float]]:
    """Stretches between two samples where the HUD counter says rounds went by unseen.

    The counter moving from i to j needs j − i result screens in between; a short round (a few
    seconds of gameplay, a quick click on NEXT ROUND) can fall between two samples entirely. Also
    scanned: before the first counter if it is past round 1, and after the last one if the game's
    total was not reached.
    """
    plays = [o for o in obs if o.kind == "play"]
    if not plays:
        return []
    starts = [r[0].time for r in runs]
    gaps = []
    for a, b in zip(plays, plays[1:]):
        if b.round > a.round and sum(a.time < s < b.time for s in starts) < b.round - a.round:
            gaps.append((a.time, b.time))
        elif b.round < a.round:  # a misread or a new game: look rather than guess
            gaps.append((a.time, b.time))
    first, last = plays[0], plays[-1]
    if first.round > 1:
        before = [o.time for o in obs if o.time < first.time]
        if before:
            gaps.append((before[-1], first.time))
    total = _consensus([o.total for o in plays])
    if total and last.round < total:
        after = [o.time for o in obs if o.time > last.time and o.kind != "result"]
        later = [s for s in starts if s > last.time]
        if after and later:  # the last round seen had its result: the rest came right after
            gaps.append((last.time, after[0]))
    return sorted(set(gaps))


# gaps are read at this spacing (every frame observed, not bisected: several screens may lie inside)
SCAN_STEP_S = 1.0


def _scan_gaps(path: Path, info: VideoInfo, obs: list[Observation], runs: list[list[Observation]],
               max_side: int, reader: Reader, crops_at: dict, step: float, scanned: set) -> bool:
    """Observe the frames of every gap not scanned yet densely, adding them to `obs`; True if any was added."""
    gaps = [g for g in _gaps_to_scan(obs, runs) if g[1] - g[0] > 1.5 * step and g not in scanned]
    scanned.update(gaps)
    if not gaps:
        return False
    groups = [list(np.arange(a + step, b - 1e-6, step)) for a, b in gaps]
    seen = {o.time for o in obs}
    added = False
    for (a, b), frames in zip(gaps, frames_in_windows(path, groups, max_side=max_side, info=info,
                                                        transform=_as_crops)):
        for t, crops in frames:
            if a < t < b and t not in seen:
                obs.append(reader.observe(t, crops))
                crops_at[t] = crops
                seen.add(t)
                added = True
    obs.sort(key=lambda o: o.time)
    return added


# --------------------------------------------------------------------------- the stage
class SegmentStage(Stage):
    name = "segment"
    output_keys = ("path",)
    requires = ("download",)  # the transcript (cues) is optional: read when present

    def config_slice(self, ctx: VideoContext):
        return ctx.config.segment.model_dump(mode="json")

    def input_files(self, ctx: VideoContext) -> list[Path]:
        files = [ctx.path(layout.MEDIA_JSON), ctx.path(layout.TRANSCRIPT_JSON), ctx.path(layout.INFO_JSON)]
        try:
            video = self._video_path(ctx)
        except (ValueError, OSError, AttributeError):  # run() reports a bad media.json properly
            video = None
        return files + ([video] if video else [])

    @staticmethod
    def _video_path(ctx: VideoContext) -> Path | None:
        media_json = ctx.path(layout.MEDIA_JSON)
        if not media_json.exists():
            return None
        rel = (read_json(media_json) or {}).get("video")
        return inside(ctx.video_dir, rel) if rel else None

    def run(self, ctx: VideoContext) -> StageOutcome:
        media_json = ctx.path(layout.MEDIA_JSON)
        if not media_json.exists():
            return StageOutcome.failed(self.name, f"{ctx.video.id}: {layout.MEDIA_JSON} missing (download stage output)",
                                       "MissingInput")
        try:
            video = self._video_path(ctx)
        except ValueError as exc:
            return StageOutcome.failed(self.name, f"{ctx.video.id}: bad video path in {layout.MEDIA_JSON}: {exc}",
                                       "BadInput")
        if video is None:
            return StageOutcome.failed(self.name, f"{ctx.video.id}: {layout.MEDIA_JSON} names no video file",
                                       "MissingInput")
        notes = []
        transcript = None
        tpath = ctx.path(layout.TRANSCRIPT_JSON)
        if tpath.exists():
            try:
                transcript = from_dict(Transcript, read_json(tpath))
            except Exception as exc:  # a bad transcript only costs the caption cues
                notes.append(f"transcript unreadable, segmenting without captions: {type(exc).__name__}: {exc}")
        else:
            notes.append("no transcript: segmenting without captions")
        chapters = None
        ipath = ctx.path(layout.INFO_JSON)
        if ipath.exists():
            try:
                chapters = (read_json(ipath) or {}).get("chapters")
            except Exception as exc:
                notes.append(f"info.json unreadable, no chapters: {type(exc).__name__}: {exc}")
        try:
            result = segment_video(video, ctx.config.segment, transcript, chapters)
        except (VideoError, SegmentationError) as exc:
            # rounds from an earlier run on other input must not outlive this verdict
            ctx.path(layout.ROUNDS_JSON).unlink(missing_ok=True)
            kind = "VideoError" if isinstance(exc, VideoError) else "NoRounds"
            return StageOutcome.failed(self.name, f"{ctx.video.id}: {exc}", kind)
        atomic_write_json(ctx.path(layout.ROUNDS_JSON), [to_dict(r) for r in result.rounds])
        outcome = StageOutcome.done(
            path=layout.ROUNDS_JSON, rounds=len(result.rounds), samples=len(result.observations),
            sampling=result.sampling,
            ocr_calls=result.ocr.calls, ocr_cache_hits=result.ocr_cache_hits, ocr_seconds=round(result.ocr.seconds, 3),
            with_points=sum(r.points is not None for r in result.rounds), seconds=result.seconds,
            refused=result.refused[:20], disagreements=sum(len(r.disagreements) for r in result.rounds))
        outcome.note = "; ".join(notes) or None
        return outcome
