"""`collect run` end to end on the demo corpus: recovery, resume, SIGKILL, bad inputs, secrets, Ray."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from naviclues.fsutil import read_json
from conftest import card_drop_table, collect_cmd

SMALL = ["--set", "demo.videos=1", "--set", "demo.rounds=2"]


def run_cli(args: list[str], env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(collect_cmd() + args, capture_output=True, text=True, env=full_env, timeout=timeout)


def artifact_hashes(out: Path) -> dict[str, str]:
    """Hashes of every published artifact (info.json holds the server URL and extraction epoch)."""
    hashes = {}
    for path in sorted((out / "videos").rglob("*")):
        if path.is_file() and path.name != "info.json":
            hashes[str(path.relative_to(out))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def dataset_rows(out: Path) -> list[dict]:
    import datasets

    dd = datasets.load_from_disk(str(out / "dataset"))
    rows = []
    for split in sorted(dd):
        for row in dd[split].remove_columns([c for c in ("image", "images", "frames") if c in dd[split].column_names]):
            rows.append({"split": split, **row})
    return sorted(rows, key=lambda r: r["id"])


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    t0 = time.perf_counter()
    proc = run_cli(["run", "--demo", "--out", str(out)])
    first = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, first, proc


def test_demo_run_builds_the_dataset(demo_run):
    out, first, proc = demo_run
    assert (out / "dataset").is_dir() and (out / "hub" / "README.md").is_file()
    assert list((out / "hub" / "data").glob("*.parquet"))
    assert "collect run" in proc.stderr  # the summary table


def test_demo_rounds_recovered(demo_run):
    out, _, _ = demo_run
    truth = read_json(out / "demo-corpus" / "truth.json")
    videos = truth["videos"] if isinstance(truth, dict) else truth
    n_rounds = ok_points = 0
    for video in videos:
        folder = out / "videos" / video["id"]
        spans = {r["round"]: r for r in read_json(folder / "rounds.json")}
        challenge = read_json(folder / "challenge.json")
        frames = read_json(folder / "frames" / "index.json")
        for true in video["rounds"]:
            n_rounds += 1
            got = spans[true["round"]]  # every round recovered
            for key in ("start_s", "guess_s", "end_s"):
                assert abs(got[key] - true[key]) <= 3.0, (video["id"], true["round"], key, got[key], true[key])
            ok_points += got["points"] == true["points"] and abs(got["distance_km"] - true["distance_km"]) < 0.05
            assert any(f["round"] == true["round"] for f in frames)
            truth_round = next(r for r in challenge["rounds"] if r["round"] == true["round"])
            assert abs(truth_round["lat"] - true["lat"]) < 1e-6 and abs(truth_round["lng"] - true["lng"]) < 1e-6
    assert ok_points / n_rounds >= 0.95


def test_rerun_does_no_work(demo_run):
    out, first, _ = demo_run
    t0 = time.perf_counter()
    proc = run_cli(["run", "--demo", "--out", str(out)])
    again = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "all stages skipped" in proc.stderr
    assert again < 0.10 * first, (again, first)


def test_status_and_config(demo_run):
    out, _, _ = demo_run
    proc = run_cli(["status", "--out", str(out)])
    assert proc.returncode == 0
    assert "segment" in proc.stdout and "rounds: 10" in proc.stdout
    proc = run_cli(["config", "--set", "challenge.ncfa_cookie=topsecret-cookie", "--set", "download.max_height=480"])
    cfg = json.loads(proc.stdout)
    assert cfg["download"]["max_height"] == 480
    assert cfg["challenge"]["ncfa_cookie"] == "**********" and "topsecret-cookie" not in proc.stdout


def _wait_for_stage(store: Path, stage: str, proc: subprocess.Popen, timeout: float = 120) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if store.exists():
            try:
                with sqlite3.connect(store, timeout=1) as conn:
                    if conn.execute("SELECT 1 FROM stage_runs WHERE stage=? AND status='running'", (stage,)).fetchone():
                        return True
            except sqlite3.OperationalError:
                pass
        time.sleep(0.01)
    return False


def test_sigkill_at_several_points_then_rerun_is_identical(tmp_path):
    reference = tmp_path / "reference"
    proc = run_cli(["run", "--demo", "--out", str(reference), *SMALL])
    assert proc.returncode == 0, proc.stderr[-3000:]

    out = tmp_path / "killed"
    killed_in = []
    # each attempt dies while the named stage is in flight (mid-write included: the kill lands
    # `delay` seconds into the stage), then the next attempt resumes from what was committed
    for stage, delay in (("download", 0.0), ("segment", 0.3), ("frames", 0.1), ("annotate", 0.5)):
        p = subprocess.Popen(collect_cmd() + ["run", "--demo", "--out", str(out), *SMALL],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if _wait_for_stage(out / "run.sqlite", stage, p):
            time.sleep(delay)
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                killed_in.append(stage)
        p.wait(timeout=300)
    assert len(killed_in) >= 3, killed_in
    proc = run_cli(["run", "--demo", "--out", str(out), *SMALL])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert artifact_hashes(out) == artifact_hashes(reference)
    assert dataset_rows(out) == dataset_rows(reference)
    with sqlite3.connect(out / "run.sqlite") as conn:
        dup = conn.execute("SELECT video_id, stage, COUNT(*) c FROM stage_runs GROUP BY 1,2 HAVING c>1").fetchall()
        assert dup == []
        assert conn.execute("SELECT COUNT(*) FROM stage_runs WHERE status='running'").fetchone()[0] == 0
    assert not list(out.rglob("*.part*"))

    # a later failure of a stage invalidates its old artifact: no build from stale captions
    proc = run_cli(["run", "--demo", "--out", str(out), *SMALL, "--set", "transcript.backend=whisper"])
    assert proc.returncode == 3
    assert "annotate" in proc.stderr and dataset_rows(out) == []
    drops = [json.loads(line) for line in (out / "dataset" / "drops.jsonl").read_text().splitlines()]
    assert drops and all(any("empty transcript" in r for r in d["reasons"]) for d in drops)


def _ngrams(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = [w.strip(".,!?").lower() for w in text.split()]
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def test_demo_clues_aligned_and_no_post_reveal_talk(demo_run):
    out, _, _ = demo_run
    truth = read_json(out / "demo-corpus" / "truth.json")
    by_round = {(v["id"], r["round"]): r for v in truth["videos"] for r in v["rounds"]}
    rows = dataset_rows(out)
    assert rows, "the demo build kept no rounds"
    for row in rows:
        true = by_round[(row["video_id"], row["round"])]
        aligned = []
        for clue in row["clues"]:
            assert clue["start_s"] < true["guess_s"], ("post-reveal clue", row["id"], clue)
            if clue["frame_index"] is None:
                continue
            frame_t = row["frame_times_s"][clue["frame_index"]]
            assert true["start_s"] - 0.5 <= frame_t < true["guess_s"]
            said = [tc for tc in true["clues"] if tc["start_s"] - 0.01 <= clue["start_s"] <= tc["end_s"] + 0.01]
            aligned += [abs(frame_t - tc["start_s"]) for tc in said]
        assert aligned and min(aligned) <= 1.0, (row["id"], aligned)
        # post-reveal talk: no 5-word run of it that the pre-reveal narration does not also contain
        leaked = _ngrams(true["post_reveal"]) - _ngrams(true["narration"])
        for column in ("reasoning", "transcript"):
            assert not (_ngrams(row[column]) & leaked), (row["id"], column, _ngrams(row[column]) & leaked)


def test_one_sft_step_on_the_built_dataset(demo_run, tmp_path):
    """The published contract (`messages` + `images`) trains with no glue."""
    pytest.importorskip("trl")
    from typer.testing import CliRunner

    from navig.cli import app
    from navig_fixtures import make_tiny_vlm

    out, _, _ = demo_run
    model = make_tiny_vlm(tmp_path / "vlm")
    result = CliRunner().invoke(app, ["train", "--dataset", str(out / "dataset"), "--model", str(model),
                                      "--out", str(tmp_path / "run"), "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["global_step"] == 1 and summary["n_examples"] >= 1
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").exists()


def _table_row(stderr: str, stage: str) -> list[str]:
    line = next(line for line in stderr.splitlines() if line.startswith(f"│ {stage} "))
    return [cell.strip() for cell in line.strip("│ ").split("│")]


def test_force_and_only(demo_run):
    out, _, _ = demo_run
    proc = run_cli(["run", "--demo", "--out", str(out), "--only", "frames", "--force", "frames"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _table_row(proc.stderr, "frames")[:2] == ["frames", "2"]  # redone for both videos
    assert not any(line.startswith("│ segment ") for line in proc.stderr.splitlines())  # nothing else ran
    proc = run_cli(["run", "--demo", "--out", str(out), "--force", "segment"])
    assert proc.returncode == 0
    assert _table_row(proc.stderr, "download")[1:3] == ["0", "2"]  # cached
    assert _table_row(proc.stderr, "segment")[1] == "2"
    assert _table_row(proc.stderr, "frames")[1] == "2"  # its input changed, so it reran
    bad = run_cli(["run", "--demo", "--out", str(out), "--only", "nonsense"])
    assert bad.returncode == 2 and "unknown stage" in bad.stderr
    proc = run_cli(["run", "--demo", "--out", str(out), "--force", "discover"])
    assert proc.returncode == 0 and "all stages skipped" in proc.stderr  # relisted; nothing changed
    bad = run_cli(["run", "--demo", "--out", str(out), "--set", "annotate.reasoning.backend=nonsense"])
    assert bad.returncode == 2 and "configuration error" in bad.stderr
    missing = run_cli(["annotate", "--out", str(out.parent / "no-such-run")])
    assert missing.returncode == 2 and "no run store" in missing.stderr


def test_demo_card_has_real_statistics_and_plots(demo_run):
    """The demo build's card: front matter naming the splits, numbers computed from the rows, working plots."""
    import re
    from collections import Counter

    import yaml

    from annotate.card import drop_reason_key

    out, _, _ = demo_run
    rows = dataset_rows(out)
    assert rows
    card = (out / "hub" / "README.md").read_text("utf-8")
    match = re.match(r"\A---\n(.*?)\n---\n", card, re.S)
    assert match, card[:200]
    meta = yaml.safe_load(match.group(1))
    splits = Counter(r["split"] for r in rows)
    assert sorted(e["split"] for e in meta["configs"][0]["data_files"]) == sorted(splits)
    assert {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]} == dict(splits)
    for entry in meta["configs"][0]["data_files"]:
        assert list((out / "hub").glob(entry["path"] + ".parquet")), entry
    total = re.search(r"^Total: (\d+) rows from (\d+) challenges and (\d+) videos", card, re.M)
    assert total and int(total.group(1)) == len(rows)
    assert int(total.group(2)) == len({r["challenge_token"] for r in rows})
    assert int(total.group(3)) == len({r["video_id"] for r in rows})
    for split, n in splits.items():
        assert re.search(rf"^\| {split} \| {n} \|", card, re.M), split
    for country, n in Counter(r["country"] for r in rows).items():
        assert f"| {country} | {n} |" in card
    assert f"{sum(len(r['clues']) for r in rows)} clues in total." in card

    # plots: every image link resolves to a PNG, next to each copy of the card
    for card_path in (out / "hub" / "README.md", out / "dataset" / "DATASET_CARD.md", out / "DATASET_CARD.md"):
        links = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", card_path.read_text("utf-8"))
        assert len(links) >= 3, card_path
        for link in links:
            target = card_path.parent / link
            assert target.is_file(), (card_path, link)
            assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and target.stat().st_size > 1000, (card_path, link)

    # drops: the card's table counts the drop records by reason
    drops = [json.loads(line) for line in (out / "dataset" / "drops.jsonl").read_text().splitlines() if line.strip()]
    assert drops, "the demo has low-score rounds that the paper's filters drop"
    section = card.split("## Filters and drops", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"^\| min_points \| 3400 \|", section, re.M)
    assert f"{len(drops)} rounds were dropped" in section
    assert card_drop_table(card) == dict(Counter(drop_reason_key(r) for d in drops for r in d["reasons"]))
    stats = read_json(out / "dataset" / "stats.json")
    assert stats["rows"] == len(rows) and stats["drops"]["total"] == len(drops)
