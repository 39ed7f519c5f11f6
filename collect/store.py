"""The run store: one SQLite file (WAL) per output folder.

One row per (video, stage) with status, attempts, input fingerprint, outputs, error and
timestamps; one row per discovered video; one row per skipped discovery item. Every
process (main, pool workers, Ray tasks on a shared filesystem) opens its own connection;
WAL lets readers (the progress display) run beside writers.
"""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from collect.records import Video, from_dict, to_dict

STORE_NAME = "run.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS videos (
  id TEXT PRIMARY KEY,
  url TEXT NOT NULL,
  title TEXT,
  channel TEXT,
  duration_s REAL,
  record TEXT NOT NULL,
  discovered_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stage_runs (
  video_id TEXT NOT NULL,
  stage TEXT NOT NULL,
  status TEXT NOT NULL,          -- running | done | failed | skipped
  attempts INTEGER NOT NULL DEFAULT 0,
  fingerprint TEXT,
  outputs TEXT,                  -- JSON
  error_type TEXT,
  error_message TEXT,
  note TEXT,
  started_at REAL,
  finished_at REAL,
  PRIMARY KEY (video_id, stage)
);
CREATE TABLE IF NOT EXISTS discover_skips (
  item TEXT PRIMARY KEY,
  reason TEXT NOT NULL,
  at REAL NOT NULL
);
"""


@dataclass
class StageRow:
    video_id: str
    stage: str
    status: str
    attempts: int
    fingerprint: str | None
    outputs: dict[str, Any]
    error_type: str | None
    error_message: str | None
    note: str | None
    started_at: float | None
    finished_at: float | None


class RunStore:
    def __init__(self, out_dir: Path | str):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / STORE_NAME
        self._conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=60000")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # videos -----------------------------------------------------------------
    def upsert_videos(self, videos: Iterable[Video]) -> None:
        now = time.time()
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            for v in videos:
                self._conn.execute(
                    "INSERT INTO videos(id, url, title, channel, duration_s, record, discovered_at) VALUES (?,?,?,?,?,?,?) "
                    "ON CONFLICT(id) DO UPDATE SET url=excluded.url, title=excluded.title, channel=excluded.channel, "
                    "duration_s=excluded.duration_s, record=excluded.record",
                    (v.id, v.url, v.title, v.channel, v.duration_s, json.dumps(to_dict(v), ensure_ascii=False), now),
                )

    def videos(self) -> list[Video]:
        rows = self._conn.execute("SELECT record FROM videos ORDER BY discovered_at, id").fetchall()
        return [from_dict(Video, json.loads(r[0])) for r in rows]

    def record_discover_skips(self, skips: Iterable[tuple[str, str]]) -> None:
        now = time.time()
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            for item, reason in skips:
                self._conn.execute(
                    "INSERT INTO discover_skips(item, reason, at) VALUES (?,?,?) "
                    "ON CONFLICT(item) DO UPDATE SET reason=excluded.reason, at=excluded.at",
                    (item, reason, now),
                )

    def discover_skips(self) -> list[tuple[str, str]]:
        return [tuple(r) for r in self._conn.execute("SELECT item, reason FROM discover_skips ORDER BY item")]

    # stage rows -------------------------------------------------------------
    def get(self, video_id: str, stage: str) -> StageRow | None:
        row = self._conn.execute(
            "SELECT video_id, stage, status, attempts, fingerprint, outputs, error_type, error_message, note, "
            "started_at, finished_at FROM stage_runs WHERE video_id=? AND stage=?",
            (video_id, stage),
        ).fetchone()
        return _row(row) if row else None

    def rows(self, stage: str | None = None) -> list[StageRow]:
        sql = ("SELECT video_id, stage, status, attempts, fingerprint, outputs, error_type, error_message, note, "
               "started_at, finished_at FROM stage_runs")
        args: tuple = ()
        if stage:
            sql += " WHERE stage=?"
            args = (stage,)
        return [_row(r) for r in self._conn.execute(sql + " ORDER BY video_id, stage", args)]

    def video_rows(self, video_id: str) -> dict[str, StageRow]:
        """{stage: row} of one video."""
        sql = ("SELECT video_id, stage, status, attempts, fingerprint, outputs, error_type, error_message, note, "
               "started_at, finished_at FROM stage_runs WHERE video_id=?")
        return {r[1]: _row(r) for r in self._conn.execute(sql, (video_id,))}

    def rows_with_prefix(self, stage: str, *prefixes: str) -> list[StageRow]:
        """Rows of `stage` whose key starts with one of `prefixes` (discovery sources and items)."""
        where = " OR ".join("substr(video_id, 1, ?) = ?" for _ in prefixes)
        args: list = [stage]
        for prefix in prefixes:
            args += [len(prefix), prefix]
        sql = ("SELECT video_id, stage, status, attempts, fingerprint, outputs, error_type, error_message, note, "
               f"started_at, finished_at FROM stage_runs WHERE stage=? AND ({where}) ORDER BY video_id")
        return [_row(r) for r in self._conn.execute(sql, args)]

    def status_counts(self) -> dict[tuple[str, str], int]:
        """{(stage, status): rows} over the discovered videos, counted by SQLite (a 10,000-video
        store answers `collect status` without loading its rows)."""
        sql = ("SELECT s.stage, s.status, COUNT(*) FROM stage_runs s JOIN videos v ON v.id = s.video_id "
               "GROUP BY s.stage, s.status")
        return {(stage, status): n for stage, status, n in self._conn.execute(sql)}

    def failures(self) -> list[tuple[str, str, str | None, str | None]]:
        """(video_id, stage, error_type, error_message) of every failed row."""
        return [tuple(r) for r in self._conn.execute(
            "SELECT video_id, stage, error_type, error_message FROM stage_runs WHERE status='failed'")]

    def video_totals(self) -> tuple[int, float]:
        """(videos, seconds of video) of the run."""
        n, seconds = self._conn.execute("SELECT COUNT(*), COALESCE(SUM(duration_s), 0) FROM videos").fetchone()
        return int(n), float(seconds)

    def output_total(self, stage: str, key: str) -> int:
        """Sum of a numeric output (e.g. segment's `rounds`) over the videos' done rows of `stage`."""
        sql = ("SELECT COALESCE(SUM(json_extract(s.outputs, ?)), 0) FROM stage_runs s JOIN videos v "
               "ON v.id = s.video_id WHERE s.stage=? AND s.status='done'")
        return int(self._conn.execute(sql, (f"$.{key}", stage)).fetchone()[0])

    def mark_running(self, video_id: str, stage: str, fingerprint: str) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT INTO stage_runs(video_id, stage, status, attempts, fingerprint, started_at) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(video_id, stage) DO UPDATE SET status='running', attempts=attempts+1, "
                "fingerprint=excluded.fingerprint, started_at=excluded.started_at, error_type=NULL, error_message=NULL, note=NULL",
                (video_id, stage, "running", 1, fingerprint, time.time()),
            )

    def mark_finished(self, video_id: str, stage: str, status: str, *, fingerprint: str,
                      outputs: dict | None = None, error_type: str | None = None,
                      error_message: str | None = None, note: str | None = None) -> None:
        with self._conn:
            self._conn.execute(
                "UPDATE stage_runs SET status=?, fingerprint=?, outputs=?, error_type=?, error_message=?, note=?, "
                "finished_at=? WHERE video_id=? AND stage=?",
                (status, fingerprint, json.dumps(outputs or {}, ensure_ascii=False, sort_keys=True), error_type,
                 error_message, note, time.time(), video_id, stage),
            )


def _row(r: tuple) -> StageRow:
    return StageRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]) if r[5] else {}, r[6], r[7], r[8], r[9], r[10])
