"""The NaviClues dataset card: Hugging Face YAML front matter + statistics computed from the rows.

The front matter is assembled with the same library objects `datasets.push_to_hub` uses
(`DatasetCardData`, `MetadataConfigs`, `DatasetInfosDict`), so `configs:` maps each split to its
`data/<split>-*` parquet files and `dataset_info:` carries the features and per-split example
counts. Every number in the body is computed here from the built rows and the drop records.
"""
from __future__ import annotations

import os
import re
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from datasets import DatasetDict, DatasetInfo, SplitDict, SplitInfo
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from naviclues.fsutil import atomic_path, atomic_write_text

STAT_COLUMNS = (
    "id", "video_id", "channel", "challenge_token", "lat", "lng", "country", "country_code", "continent",
    "points", "distance_km", "clues", "reasoning", "reasoning_source", "transcript_country_code",
)
POINT_BINS = ((0, 1000), (1000, 2000), (2000, 3000), (3000, 4000), (4000, 5000), (5000, 5001))
DISTANCE_BINS_KM = ((0, 1), (1, 10), (10, 100), (100, 1000), (1000, 5000), (5000, float("inf")))
TOP_COUNTRIES = 20

DEFAULT_PROVENANCE = {
    "source": "GeoGuessr 'play along' videos on YouTube: expert players narrate their reasoning before guessing.",
    "frames": "Video frames belong to the video creators (the channel named in each row); they are included for "
    "research on image geo-localization and remain under the creators' rights.",
    "street_view": "Street View panoramas are Google imagery, subject to the Google Maps/Google Earth Additional "
    "Terms of Service and the Street View attribution requirements.",
    "transcripts": "Transcripts come from YouTube captions (or ASR of the video audio when captions were absent) "
    "and reproduce the creators' speech.",
    "reasoning": "The `reasoning` column is the expert's pre-reveal reasoning, rewritten or produced as named in "
    "`reasoning_source`.",
    "paper": "Navig: Natural Language-guided Analysis with Vision Language Models for Image Geo-localization "
    "(arXiv:2502.14638), which introduced NaviClues.",
}

FIELD_DOCS = {
    "id": "`<video_id>/<round>` (or `<channel>/<challenge>/<round>` for the paper release)",
    "video_id / channel / video_url": "the YouTube video the round comes from",
    "challenge_token / round": "GeoGuessr challenge and round number (the split unit)",
    "lat / lng / country / country_code / continent / city": "ground truth of the round",
    "points / distance_km / time_limit_s / forbid_moving": "the player's score and the game settings",
    "transcript": "what the player said before the reveal",
    "clues": "extracted clues `{text, category, entity, start_s, end_s, frame_index}`",
    "frames / frame_times_s": "video frames of the round and their times (s)",
    "image / images": "the Street View panorama when fetched, else the best frame; `images == [image]` for TRL",
    "reasoning / reasoning_source": "the reasoning text and who produced it",
    "transcript_country_code": "the country the player's own words conclude (geoparse of the round's talk, reveal "
                               "included); differs from country_code when the player was wrong or the talk is "
                               "another round's",
    "messages": "TRL conversational VLM record: user = image + prompt, assistant = reasoning",
}


# measured figures of the label makers on real expert rounds (benchmarks/geoparse.py and rewrite_rouge.py
# --cv 5 on ../shared/naviclues/dev_rounds.jsonl); CV = grouped 5-fold, fitted on training folds only
LABEL_QUALITY = [
    "Measured on 143 real expert rounds (dev), with grouped 5-fold cross-validation (rows grouped by challenge, "
    "or by channel; every fitted weight fitted on the training folds only):",
    "",
    "- `transcript_country_code` (geoparse): country accuracy 0.839 plain (in-sample), **0.797 cross-validated** "
    "by challenge (0.762 by channel); when the talk names the true country at all (0.909 of rounds) it is picked "
    "in 0.923 plain, **0.877 cross-validated** (0.839 by channel).",
    "- `reasoning` (offline answer-guided rewrite) against GPT-4o references: ROUGE-1 / ROUGE-2 / ROUGE-L "
    "0.401 / 0.093 / 0.200 plain, **0.402 / 0.093 / 0.200 cross-validated**; every text names the true country, "
    "none carries talk from after the reveal.",
]


def relink_plots(card_text: str, plots_href: str) -> str:
    """The card with its `plots/…` image links pointing at `plots_href` instead (for a copy of the card
    kept somewhere other than next to its plots folder)."""
    return card_text.replace("](plots/", f"]({plots_href.rstrip('/')}/")


def drop_reason_key(reason: str) -> str:
    """The reason's kind: the text before the first ':' ("image missing: a/b.jpg" -> "image missing")."""
    return str(reason).split(":", 1)[0].strip() or "unspecified"


_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~])(?:[A-Za-z]:[\\/]|~?/)(?:[^\s/\\'\"]+[\\/])+")
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.I)
# requests/urllib3 name the server without a URL: HTTPConnectionPool(host='10.1.2.3', port=8000)
_HOST = re.compile(r"\bhost=(['\"]?)[^'\"\s,)]+\1(?:,\s*port=\d+)?", re.I)
# what a server said: after "HTTP 500:" or "…response:" comes its body
_SERVER_BODY = re.compile(r"\b(HTTP \d{3}|response|body)\b\s*:.*", re.S | re.I)
_EXAMPLE_CHARS = 160


def public_drop_example(reason: str) -> str:
    """A drop reason fit for the public card: no local folders (a path keeps its file name), no server
    URLs or host names, and no server response body after an HTTP status (it can echo prompts, keys or stack
    traces)."""
    text = _SERVER_BODY.sub(r"\1 (server's text withheld)", str(reason))
    text = _URL.sub("<url>", text)
    text = _HOST.sub("host=<host>", text)
    text = _ABSOLUTE_PATH.sub("…/", text)
    text = " ".join(text.split())
    return text if len(text) <= _EXAMPLE_CHARS else text[: _EXAMPLE_CHARS - 1] + "…"


def _numeric_summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def quantile(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return {
        "count": len(values),
        "mean": round(statistics.fmean(values), 3),
        "median": round(statistics.median(values), 3),
        "min": round(ordered[0], 3),
        "p25": round(quantile(0.25), 3),
        "p75": round(quantile(0.75), 3),
        "p90": round(quantile(0.90), 3),
        "max": round(ordered[-1], 3),
    }


def _histogram(values: list[float], bins: tuple[tuple[float, float], ...]) -> list[dict[str, Any]]:
    return [{"low": lo, "high": hi, "count": sum(1 for v in values if lo <= v < hi)} for lo, hi in bins]


def table_rows(dataset_dict: DatasetDict) -> dict[str, list[dict[str, Any]]]:
    """The non-image columns of every split as plain dicts (images are never decoded here)."""
    out = {}
    for split, ds in dataset_dict.items():
        columns = [c for c in STAT_COLUMNS if c in ds.column_names]
        out[split] = ds.select_columns(columns).to_list()
    return out


def compute_stats(dataset_dict: DatasetDict, drops: list[dict], *, filters_applied: dict | None = None) -> dict[str, Any]:
    per_split = table_rows(dataset_dict)
    rows = [r for split_rows in per_split.values() for r in split_rows]
    countries = Counter(r["country"] or "unknown" for r in rows)
    reason_counts: Counter[str] = Counter()
    reason_examples: dict[str, str] = {}
    stage_counts: Counter[str] = Counter()
    for record in drops:
        stage_counts[str(record.get("stage", "upstream"))] += 1
        for reason in record.get("reasons", []):
            key = drop_reason_key(reason)
            reason_counts[key] += 1
            reason_examples.setdefault(key, public_drop_example(reason))
    points = [float(r["points"]) for r in rows if r.get("points") is not None]
    distances = [float(r["distance_km"]) for r in rows if r.get("distance_km") is not None]
    reasoning_chars = [len(r["reasoning"] or "") for r in rows]
    parsed = [r for r in rows if r.get("transcript_country_code")]
    return {
        "rows": len(rows),
        "splits": {split: len(split_rows) for split, split_rows in per_split.items()},
        "challenges": len({r["challenge_token"] for r in rows if r.get("challenge_token")}),
        "videos": len({r["video_id"] for r in rows if r.get("video_id")}),
        "countries": {
            "count": len([c for c in countries if c != "unknown"]),
            "top": [[c, n] for c, n in sorted(countries.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_COUNTRIES]],
            "counts": dict(sorted(countries.items())),
        },
        "continents": dict(sorted(Counter(r["continent"] or "unknown" for r in rows).items())),
        "clue_categories": dict(
            sorted(Counter((c.get("category") or "uncategorised") for r in rows for c in r["clues"] or []).items())
        ),
        "clues": sum(len(r["clues"] or []) for r in rows),
        "reasoning_chars": _numeric_summary([float(n) for n in reasoning_chars]),
        "reasoning_sources": dict(sorted(Counter(r["reasoning_source"] or "unknown" for r in rows).items())),
        "transcript_agreement": {
            "parsed": len(parsed),
            "agree": sum(r["transcript_country_code"] == r["country_code"] for r in parsed),
        },
        "points": {**_numeric_summary(points), "histogram": _histogram(points, POINT_BINS)},
        "distance_km": {**_numeric_summary(distances), "histogram": _histogram(distances, DISTANCE_BINS_KM)},
        "channels": dict(sorted(Counter(r["channel"] or "unknown" for r in rows).items())),
        "drops": {
            "total": len(drops),
            # a record for a whole video (unreadable artifacts, no rounds found) stands for all its rounds
            "videos": sum(1 for d in drops if d.get("video_id") is not None and d.get("id") == d.get("video_id")),
            "by_reason": dict(sorted(reason_counts.items())),
            "example": dict(sorted(reason_examples.items())),
            "by_stage": dict(sorted(stage_counts.items())),
        },
        "filters_applied": filters_applied or {},
    }


# ---------------------------------------------------------------- plots


def write_plots(dataset_dict: DatasetDict, stats: dict[str, Any], plots_dir: Path) -> dict[str, Path]:
    """clue_categories.png, continents.png, world_scatter.png (matplotlib Agg), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    def save(fig, name: str) -> None:
        target = plots_dir / f"{name}.png"
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        written[name] = target

    def bar(counts: dict[str, int], name: str, title: str, xlabel: str) -> None:
        fig, ax = plt.subplots(figsize=(7, max(2.5, 0.3 * len(counts) + 1)))
        if counts:
            labels, values = zip(*sorted(counts.items(), key=lambda kv: kv[1]))
            ax.barh(labels, values, color="#4C72B0")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        save(fig, name)

    bar(stats["clue_categories"], "clue_categories", "Clues per category", "clues")
    bar(stats["continents"], "continents", "Rows per continent", "rows")

    fig, ax = plt.subplots(figsize=(8, 4.2))
    colors = {"train": "#4C72B0", "validation": "#55A868", "test": "#C44E52"}
    for split, split_rows in table_rows(dataset_dict).items():
        if split_rows:
            ax.scatter([r["lng"] for r in split_rows], [r["lat"] for r in split_rows], s=8,
                       label=f"{split} ({len(split_rows)})", color=colors.get(split), alpha=0.7)
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title("Round locations")
    ax.grid(True, alpha=0.3)
    if ax.collections:
        ax.legend(loc="lower left", fontsize=8)
    save(fig, "world_scatter")
    return written


# ---------------------------------------------------------------- front matter


def size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def card_data(
    dataset_dict: DatasetDict,
    *,
    title: str,
    license: str = "other",
    license_name: str | None = "naviclues-mixed-third-party",
    hub_data_dir: Path | None = None,
) -> DatasetCardData:
    total = sum(len(ds) for ds in dataset_dict.values())
    extra = {"license_name": license_name} if license == "other" and license_name else {}
    data = DatasetCardData(
        license=license,
        language=["en"],
        task_categories=["image-text-to-text", "visual-question-answering"],
        size_categories=[size_category(total)],
        pretty_name=title,
        tags=["geolocation", "geoguessr", "street-view", "reasoning", "vision-language"],
        **extra,
    )
    splits = [s for s in dataset_dict]
    MetadataConfigs({"default": {"data_files": [{"split": s, "path": f"data/{s}-*"} for s in splits]}}).to_dataset_card_data(data)
    features = next(iter(dataset_dict.values())).features
    info = DatasetInfo(features=features, splits=SplitDict(), dataset_size=0, download_size=0)
    for split, ds in dataset_dict.items():
        info.splits.add(SplitInfo(name=split, num_bytes=int(ds.data.nbytes), num_examples=len(ds)))
        info.dataset_size += int(ds.data.nbytes)
    if hub_data_dir is not None and Path(hub_data_dir).is_dir():
        info.download_size = sum(p.stat().st_size for p in Path(hub_data_dir).glob("*.parquet"))
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    return data


# ---------------------------------------------------------------- body


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt_summary(summary: dict[str, Any]) -> str:
    if not summary.get("count"):
        return "no values"
    keys = ("count", "mean", "median", "min", "p25", "p75", "p90", "max")
    return ", ".join(f"{k} {summary[k]}" for k in keys if k in summary)


def render_body(stats: dict[str, Any], plot_links: dict[str, str], *, title: str, provenance: dict[str, str]) -> str:
    parts = [f"# {title}", ""]
    parts.append(
        f"{title} pairs a GeoGuessr scene (the Street View panorama when fetched, else a frame of the video) with "
        "an expert player's reasoning about where it is. Built with the `annotate` flow of the naviclues toolkit; "
        "splits are by challenge so no challenge appears in two splits."
    )
    parts += ["", "## Usage", "", "```python", "from datasets import load_dataset", "",
              'ds = load_dataset("<org>/<name>")  # or load_dataset("path/to/OUT/hub")',
              'row = ds["train"][0]; row["image"], row["reasoning"], row["messages"]', "```", ""]

    parts += ["## Splits", ""]
    groups = stats.get("groups", {})
    parts.append(_table(("split", "rows", "challenges/videos"),
                        [(s, n, groups.get(s, "")) for s, n in stats["splits"].items()]))
    parts += ["", f"Total: {stats['rows']} rows from {stats['challenges']} challenges and {stats['videos']} videos.", ""]
    policy = stats.get("split_policy")
    if policy:
        parts += ["Split policy: " + ", ".join(f"{k} = {v}" for k, v in policy.items()), ""]

    parts += ["## Fields", "", _table(("column", "content"), list(FIELD_DOCS.items())), ""]

    parts += ["## Statistics", "", "### Countries", "",
              f"{stats['countries']['count']} countries. Top {len(stats['countries']['top'])}:", "",
              _table(("country", "rows"), [tuple(x) for x in stats["countries"]["top"]]), ""]
    parts += ["### Continents", "", _table(("continent", "rows"), list(stats["continents"].items())), ""]
    parts += ["### Clue categories", "", f"{stats['clues']} clues in total.", "",
              _table(("category", "clues"), list(stats["clue_categories"].items())), ""]
    parts += ["### Reasoning", "", f"Length in characters: {_fmt_summary(stats['reasoning_chars'])}.", "",
              _table(("reasoning_source", "rows"), list(stats["reasoning_sources"].items())), ""]
    agreement = stats.get("transcript_agreement") or {}
    if agreement.get("parsed"):
        line = (f"The player's own words conclude the true country in {agreement['agree']} of "
                f"{agreement['parsed']} rows (`transcript_country_code`, parsed from the talk including the reveal).")
        if agreement["agree"] < agreement["parsed"]:
            line += (" In the others the player was wrong and never named the answer, or the talk belongs to "
                     "another round.")
        parts += ["### Transcript vs truth", "", line, ""]
    parts += ["### How good the labels are", "", *LABEL_QUALITY, ""]
    parts += ["### Points", "", f"{_fmt_summary(stats['points'])}.", "",
              _table(("points", "rows"), [(f"{h['low']}-{h['high'] - 1}" if h["high"] - h["low"] > 1 else h["low"], h["count"])
                                          for h in stats["points"].get("histogram", [])]), ""]
    parts += ["### Distance to the truth (km)", "", f"{_fmt_summary(stats['distance_km'])}.", "",
              _table(("distance_km", "rows"), [(f"[{h['low']}, {h['high']})", h["count"]) for h in stats["distance_km"].get("histogram", [])]), ""]
    parts += ["### Rows per channel", "", _table(("channel", "rows"), list(stats["channels"].items())), ""]

    parts += ["## Plots", ""]
    for name, link in plot_links.items():
        parts += [f"![{name.replace('_', ' ')}]({link})", ""]

    parts += ["## Filters and drops", ""]
    if stats["filters_applied"]:
        parts += [_table(("filter", "setting"), [(k, v) for k, v in sorted(stats["filters_applied"].items())]), ""]
    else:
        parts += ["No filters were configured for this build.", ""]
    drops = stats["drops"]
    whole = drops.get("videos", 0)
    dropped = f"{drops['total'] - whole} rounds were dropped"
    if whole:
        dropped += f", and {whole} whole video(s) with no readable rounds"
    parts += [f"{dropped}. Drops per reason (a round can have several reasons):", ""]
    parts += [_table(("reason", "rounds", "example"),
                     [(k, n, drops["example"].get(k, "")) for k, n in drops["by_reason"].items()]) if drops["by_reason"]
              else "No drops.", ""]

    parts += ["## Provenance and terms", ""]
    parts += [f"- **{k.replace('_', ' ')}**: {v}" for k, v in provenance.items()]
    parts += ["", "Use of this dataset must respect the rights of the video creators, Google's Street View terms "
              "and YouTube's terms of service. Contact the maintainers to have a video removed.", ""]
    parts += ["## Citation", "",
              "NaviClues was introduced in *Navig: Natural Language-guided Analysis with Vision Language Models for "
              "Image Geo-localization* (arXiv:2502.14638); cite that paper when using the dataset.", ""]
    return "\n".join(parts)


def write_card(
    dataset_dict: DatasetDict,
    drops: list[dict],
    out_path: Path | str,
    plots_dir: Path | str,
    *,
    filters_applied: dict | None = None,
    title: str = "NaviClues",
    provenance: dict | None = None,
    stats: dict | None = None,
    hub_data_dir: Path | str | None = None,
    license: str = "other",
) -> str:
    """Write the card at `out_path` (plots under `plots_dir`, linked relatively) and return its text."""
    out_path = Path(out_path)
    plots_dir = Path(plots_dir)
    if stats is None:
        stats = compute_stats(dataset_dict, drops, filters_applied=filters_applied)
    plots = write_plots(dataset_dict, stats, plots_dir)
    links = {name: Path(os.path.relpath(path, out_path.parent)).as_posix() for name, path in plots.items()}
    data = card_data(dataset_dict, title=title, license=license,
                     hub_data_dir=Path(hub_data_dir) if hub_data_dir else None)
    body = render_body(stats, links, title=title, provenance={**DEFAULT_PROVENANCE, **(provenance or {})})
    text = f"---\n{data.to_yaml()}\n---\n\n{body}"
    DatasetCard(text)  # parses the front matter back: a malformed card fails the build here, not on the Hub
    atomic_write_text(out_path, text)
    return text


__all__ = ["compute_stats", "card_data", "drop_reason_key", "public_drop_example", "relink_plots", "render_body", "write_card", "write_plots"]
