"""Round segmentation accuracy of a finished `collect run` against a truth file.

    python benchmarks/segment_accuracy.py --truth CORPUS/truth.json --out RUN_DIR [--slack 2]

Truth: README "truth.json" (written by `collect/demo/generate.py` and the real-game fixture
`tests/realgame`). Run folder: what `collect run --out RUN_DIR` leaves —
`videos/<id>/info.json` (id, webpage_url), `videos/<id>/rounds.json` (the segmenter's
`RoundSpan`s), `dataset/` (`datasets.load_from_disk`: one row per kept round, `clues[*]
.frame_index` into `frame_times_s`) and `run.sqlite` (why a video has no rounds).

Matching. A truth video is matched to a run video by id (or its safe folder name), else by
`page` (the run video's webpage URL ends with it). A found round matches the truth round with
the same number whose span [start_s − slack, end_s + slack] holds its guess time; each truth
round takes at most one (the nearest guess). Unmatched found rounds are false rounds (those
inside another round's span with the wrong number are also counted as `label_errors`).

Figures: rounds expected / found / false / missed; median and p95 |error| (numpy's linear
percentile) of start, guess and end times over matched rounds; points read exactly (a missed
round is not exact); distance within the display's rounding (0.81 km, or 0.1 %); dataset rows
vs the truth's `kept` (rows of truth rounds not kept are `kept_false`, kept truth rounds with
no row `kept_missed`); clue→frame alignment: for each row clue placed on a frame, the truth
clue of that round whose phrase contains the clue's text and was being said when the row clue
was (see `clue_alignment`), error = |frame time − truth clue time| (`frame_gap_p95_s`: |frame time − when the row says
the clue was said|, the frames' share of it; other clues — filler, the
conclusion naming the country again — are counted as `clues_unmatched`, not scored). Every figure is given overall and per group: per video and, where the truth videos
carry them, per style, resolution and fps. The last stdout line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

DISTANCE_ABS_KM = 0.81  # half a mile: the coarsest rounding the game displays
DISTANCE_REL = 0.001
PHRASE_S_PER_WORD, PHRASE_SLACK_S = 0.25, 0.5  # how long saying a clue phrase may take (slow talk)


class TruthError(ValueError):
    """The truth file is unreadable or misses a required field."""


ROUND_KEYS = ("round", "start_s", "guess_s", "end_s", "points")


def load_truth(path: Path) -> list[dict]:
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise TruthError(f"{path}: cannot read the truth file: {exc}") from None
    videos = data.get("videos") if isinstance(data, dict) else None
    if not isinstance(videos, list):
        raise TruthError(f"{path}: expected an object with a 'videos' list")
    for i, video in enumerate(videos):
        if not isinstance(video, dict) or not (video.get("id") or video.get("page")):
            raise TruthError(f"{path}: videos[{i}] needs an 'id' or a 'page'")
        rounds = video.get("rounds")
        if not isinstance(rounds, list):
            raise TruthError(f"{path}: video {video.get('id') or video.get('page')}: 'rounds' must be a list")
        for j, r in enumerate(rounds):
            missing = [k for k in ROUND_KEYS if not isinstance(r, dict) or k not in r]
            if missing:
                raise TruthError(f"{path}: video {video.get('id') or video.get('page')} rounds[{j}]: "
                                 f"missing {', '.join(missing)}")
    return videos


# --------------------------------------------------------------------------- the run folder
@dataclass
class RunVideo:
    folder: Path
    id: str
    page_url: str | None
    rounds: list[dict] | None  # None: no rounds.json (segment failed or never ran)
    error: str | None = None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None


def _segment_errors(run_dir: Path) -> dict[str, str]:
    db = run_dir / "run.sqlite"
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT video_id, stage, error_type, error_message FROM stage_runs "
                                "WHERE status = 'failed'").fetchall()
    except sqlite3.Error:
        return {}
    errors: dict[str, str] = {}
    for vid, stage, etype, message in rows:
        errors.setdefault(vid, f"{stage}: {etype}: {message}")
    return errors


def load_run(run_dir: Path) -> list[RunVideo]:
    videos_dir = Path(run_dir) / "videos"
    if not videos_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no videos/ folder (not a finished `collect run --out` folder)")
    errors = _segment_errors(Path(run_dir))
    out = []
    for folder in sorted(p for p in videos_dir.iterdir() if p.is_dir()):
        info = _read_json(folder / "info.json") or {}
        rounds = _read_json(folder / "rounds.json")
        vid = str(info.get("id") or folder.name)
        out.append(RunVideo(folder, vid, info.get("webpage_url") or info.get("original_url"),
                            rounds if isinstance(rounds, list) else None,
                            errors.get(vid) or errors.get(folder.name)))
    return out


def match_video(truth_video: dict, run_videos: list[RunVideo]) -> RunVideo | None:
    vid = truth_video.get("id")
    if vid:
        for rv in run_videos:
            if rv.id == vid or rv.folder.name == vid:
                return rv
    page = str(truth_video.get("page") or "").strip("/")
    if page:
        for rv in run_videos:
            path = urlsplit(rv.page_url).path.strip("/") if rv.page_url else ""
            if path and (path == page or path.endswith("/" + page) or Path(path).name == Path(page).name):
                return rv
    return None


def dataset_rows(run_dir: Path) -> list[dict]:
    """Rows of DIR/dataset (every split), without the image columns."""
    path = Path(run_dir) / "dataset"
    if not (path / "dataset_dict.json").exists():
        return []
    import datasets

    dd = datasets.load_from_disk(str(path))
    rows = []
    for split in dd:
        ds = dd[split]
        ds = ds.remove_columns([c for c in ("image", "images", "frames") if c in ds.column_names])
        rows.extend(ds.to_list())
    return rows


# --------------------------------------------------------------------------- matching
def match_rounds(truth_rounds: list[dict], found: list[dict], slack: float) -> tuple[list[tuple[dict, dict]], list[dict], list[dict], int]:
    """(matched (truth, found) pairs, missed truth rounds, false found rounds, label errors)."""
    pairs, used = [], set()
    for t in truth_rounds:
        lo, hi = float(t["start_s"]) - slack, float(t["end_s"]) + slack
        candidates = [(abs(float(f["guess_s"]) - float(t["guess_s"])), i) for i, f in enumerate(found)
                      if i not in used and int(f.get("round", -1)) == int(t["round"])
                      and lo <= float(f["guess_s"]) <= hi]
        if candidates:
            _, i = min(candidates)
            used.add(i)
            pairs.append((t, found[i]))
    matched = {id(t) for t, _ in pairs}
    missed = [t for t in truth_rounds if id(t) not in matched]
    false = [f for i, f in enumerate(found) if i not in used]
    label_errors = sum(1 for f in false if any(float(t["start_s"]) - slack <= float(f["guess_s"]) <= float(t["end_s"]) + slack
                                               for t in truth_rounds))
    return pairs, missed, false, label_errors


_TOKEN = re.compile(r"[a-z0-9]+")


def _norm(text: str) -> str:
    return " ".join(_TOKEN.findall(str(text).lower()))


def clue_alignment(row: dict, truth_round: dict) -> tuple[list[float], list[float], int]:
    """Per placed clue that is a truth clue: |frame time − truth clue time| and |frame time − the
    time the row says the clue was said| (the frames' share of the error); and the number of placed
    clues that are no truth clue.

    A row clue is a truth clue when the truth phrase contains its text and it was said while the
    phrase was: within PHRASE_S_PER_WORD per phrase word (+ PHRASE_SLACK_S) of the truth time, so
    the same name said again in the conclusion or the chat talk is not scored against the clue."""
    truth_clues = [(float(t), _norm(text)) for t, text in truth_round.get("clue_times") or []]
    frame_times = row.get("frame_times_s") or []
    errors, gaps, unmatched = [], [], 0
    for clue in row.get("clues") or []:
        idx = clue.get("frame_index")
        if idx is None or not 0 <= idx < len(frame_times):
            continue
        text = _norm(clue.get("text") or "")
        times = [float(x) for x in (clue.get("start_s"), clue.get("end_s")) if x is not None]
        said_at = sum(times) / len(times) if times else None
        said = [t for t, phrase in truth_clues if text and f" {text} " in f" {phrase} " and said_at is not None
                and abs(said_at - t) <= PHRASE_S_PER_WORD * len(phrase.split()) + PHRASE_SLACK_S]
        if not said:
            unmatched += 1
            continue
        t_true = min(said, key=lambda t: abs(t - said_at))
        errors.append(abs(float(frame_times[idx]) - t_true))
        gaps.append(abs(float(frame_times[idx]) - said_at))
    return errors, gaps, unmatched


# --------------------------------------------------------------------------- figures
@dataclass
class Tally:
    expected: int = 0
    found: int = 0
    false: int = 0
    missed: int = 0
    label_errors: int = 0
    start: list[float] = field(default_factory=list)
    guess: list[float] = field(default_factory=list)
    end: list[float] = field(default_factory=list)
    points_exact: int = 0
    distance_close: int = 0
    kept_expected: int = 0
    kept_rows: int = 0
    kept_matching: int = 0
    kept_false: int = 0
    align: list[float] = field(default_factory=list)
    frame_gap: list[float] = field(default_factory=list)
    clues_unmatched: int = 0
    videos_expected: int = 0
    videos_found: int = 0

    def figures(self) -> dict[str, Any]:
        def med(xs):
            return round(float(np.median(xs)), 3) if xs else None

        def p95(xs):
            return round(float(np.percentile(xs, 95)), 3) if xs else None

        return {
            "videos_expected": self.videos_expected, "videos_found": self.videos_found,
            "rounds_expected": self.expected, "rounds_found": self.found, "false_rounds": self.false,
            "missed_rounds": self.missed, "label_errors": self.label_errors,
            "start_err_median_s": med(self.start), "start_err_p95_s": p95(self.start),
            "guess_err_median_s": med(self.guess), "guess_err_p95_s": p95(self.guess),
            "end_err_median_s": med(self.end), "end_err_p95_s": p95(self.end),
            "points_exact": self.points_exact,
            "points_exact_rate": round(self.points_exact / self.expected, 4) if self.expected else None,
            "distance_close": self.distance_close,
            "kept_expected": self.kept_expected, "kept_rows": self.kept_rows, "kept_matching": self.kept_matching,
            "kept_false": self.kept_false, "kept_missed": self.kept_expected - self.kept_matching,
            "align_err_median_s": med(self.align), "align_err_p95_s": p95(self.align),
            "frame_gap_p95_s": p95(self.frame_gap),
            "clues_aligned": len(self.align), "clues_unmatched": self.clues_unmatched,
        }


def _distance_close(truth_km, found_km) -> bool:
    if truth_km is None or found_km is None:
        return truth_km is None and found_km is None
    return abs(float(found_km) - float(truth_km)) <= max(DISTANCE_ABS_KM, DISTANCE_REL * float(truth_km))


def _groups(video: dict) -> list[str]:
    names = [f"video:{video.get('id') or video.get('page')}"]
    if video.get("style"):
        names.append(f"style:{video['style']}")
    if video.get("width") and video.get("height"):
        names.append(f"resolution:{video['width']}x{video['height']}")
    if video.get("fps"):
        names.append(f"fps:{video['fps']}")
    return names


def evaluate(truth_videos: list[dict], run_dir: Path, slack: float = 2.0) -> dict[str, Any]:
    run_videos = load_run(run_dir)
    rows = dataset_rows(run_dir)
    rows_by_video: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        rows_by_video[str(row.get("video_id"))].append(row)
    tallies: dict[str, Tally] = defaultdict(Tally)
    details = []
    for video in truth_videos:
        groups = ["all", *_groups(video)]
        rv = match_video(video, run_videos)
        found = (rv.rounds or []) if rv else []
        pairs, missed, false, label_errors = match_rounds(video["rounds"], found, slack)
        video_rows = {}
        if rv is not None:
            for row in rows_by_video.get(rv.id, []) + (rows_by_video.get(rv.folder.name, []) if rv.folder.name != rv.id else []):
                video_rows[int(row["round"])] = row
        truth_by_round = {int(r["round"]): r for r in video["rounds"]}
        kept_truth = {k for k, r in truth_by_round.items() if r.get("kept")}
        align, gaps, unmatched = [], [], 0
        for k, row in video_rows.items():
            if k in truth_by_round:
                errs, gap, n_un = clue_alignment(row, truth_by_round[k])
                align += errs
                gaps += gap
                unmatched += n_un
        for name in groups:
            t = tallies[name]
            t.videos_expected += 1
            t.videos_found += rv is not None
            t.expected += len(video["rounds"])
            t.found += len(pairs)
            t.false += len(false)
            t.missed += len(missed)
            t.label_errors += label_errors
            for tr, fr in pairs:
                t.start.append(abs(float(fr["start_s"]) - float(tr["start_s"])))
                t.guess.append(abs(float(fr["guess_s"]) - float(tr["guess_s"])))
                t.end.append(abs(float(fr["end_s"]) - float(tr["end_s"])))
                t.points_exact += fr.get("points") is not None and int(fr["points"]) == int(tr["points"])
                t.distance_close += _distance_close(tr.get("distance_km"), fr.get("distance_km"))
            t.kept_expected += len(kept_truth)
            t.kept_rows += len(video_rows)
            t.kept_matching += len(kept_truth & set(video_rows))
            t.kept_false += len(set(video_rows) - kept_truth)
            t.align += align
            t.frame_gap += gaps
            t.clues_unmatched += unmatched
        details.append({
            "video": video.get("id") or video.get("page"), "run_folder": rv.folder.name if rv else None,
            "error": rv.error if rv else "no run folder for this video",
            "missed": [r["round"] for r in missed],
            "false": [{"round": f.get("round"), "guess_s": f.get("guess_s")} for f in false],
            "points_wrong": [{"round": tr["round"], "truth": tr["points"], "read": fr.get("points")}
                             for tr, fr in pairs if fr.get("points") is None or int(fr["points"]) != int(tr["points"])],
            "guess_err_s": {tr["round"]: round(float(fr["guess_s"]) - float(tr["guess_s"]), 3) for tr, fr in pairs},
            "kept_truth": sorted(kept_truth), "kept_rows": sorted(video_rows),
        })
    overall = tallies.pop("all", Tally()).figures()
    overall["groups"] = {name: t.figures() for name, t in sorted(tallies.items())}
    overall["details"] = details
    return overall


def acceptance_failures(figures: dict, max_guess_p95_s: float = 1.0, max_align_p95_s: float = 1.0) -> list[str]:
    """The issue's acceptance, per group: what fails (empty = met). Alignment is judged where the truth
    keeps rounds (a group with none has no rows to align)."""
    problems = []
    for name, g in [("all", figures), *figures.get("groups", {}).items()]:
        if g["rounds_found"] != g["rounds_expected"]:
            problems.append(f"{name}: {g['rounds_found']}/{g['rounds_expected']} rounds found")
        if g["false_rounds"]:
            problems.append(f"{name}: {g['false_rounds']} false rounds")
        if g["guess_err_p95_s"] is None or g["guess_err_p95_s"] > max_guess_p95_s:
            problems.append(f"{name}: guess p95 {g['guess_err_p95_s']} s > {max_guess_p95_s}")
        if g["points_exact"] != g["rounds_expected"]:
            problems.append(f"{name}: points exact {g['points_exact']}/{g['rounds_expected']}")
        if g["kept_false"] or g["kept_matching"] != g["kept_expected"]:
            problems.append(f"{name}: kept rows {g['kept_rows']} (matching {g['kept_matching']}, false "
                            f"{g['kept_false']}) vs truth kept {g['kept_expected']}")
        if g["kept_expected"] and (g["align_err_p95_s"] is None or g["align_err_p95_s"] > max_align_p95_s):
            problems.append(f"{name}: align p95 {g['align_err_p95_s']} s > {max_align_p95_s}")
    return problems


def _print_table(figures: dict) -> None:
    cols = ("rounds_expected", "rounds_found", "false_rounds", "guess_err_median_s", "guess_err_p95_s",
            "start_err_p95_s", "end_err_p95_s", "points_exact", "kept_expected", "kept_rows", "kept_false",
            "align_err_p95_s")
    short = ("exp", "found", "false", "guess_med", "guess_p95", "start_p95", "end_p95", "pts_ok", "kept_exp",
             "kept_rows", "kept_false", "align_p95")
    print(f"{'group':32s} " + " ".join(f"{s:>10s}" for s in short))
    for name, g in [("all", figures), *figures["groups"].items()]:
        print(f"{name:32s} " + " ".join(f"{str(g[c]):>10s}" for c in cols))
    for d in figures["details"]:
        if d["error"] or d["missed"] or d["false"] or d["points_wrong"] or d["kept_truth"] != d["kept_rows"]:
            print(f"  {d['video']}: error={d['error']} missed={d['missed']} false={d['false']} "
                  f"points_wrong={d['points_wrong']} kept truth={d['kept_truth']} rows={d['kept_rows']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--truth", type=Path, required=True, help="truth.json of the corpus")
    parser.add_argument("--out", type=Path, required=True, help="the `collect run --out` folder")
    parser.add_argument("--slack", type=float, default=2.0,
                        help="seconds a found guess may fall outside a truth round's span and still match it")
    args = parser.parse_args(argv)
    try:
        truth = load_truth(args.truth)
        figures = evaluate(truth, args.out, args.slack)
    except (TruthError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_table(figures)
    problems = acceptance_failures(figures)
    print(f"acceptance: {'met' if not problems else 'NOT met: ' + '; '.join(problems[:8])}")
    figures["acceptance_failures"] = problems
    print(json.dumps(figures, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
