"""benchmarks/rewrite_rouge.py as a command: extractive reasoning scored with ROUGE against references."""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "rewrite_rouge.py"

# post-reveal talk is clue-bearing (the extractive writer keeps it when given the whole transcript) and
# carries words the pre-reveal talk never says: they must not reach the reasoning
LEAK_WORDS = ("flabbergasted", "zeppelin", "marmalade")

ROWS = [
    {
        "id": "geopeter/TOKENaaaa/1", "channel": "geopeter", "challenge_token": "TOKENaaaa", "round": 1,
        "lat": 59.33, "lng": 18.07, "country": "Sweden",
        "transcript": (
            "alright round one let's go so we are on a small paved road with a yellow centre line and the "
            "road signs have this yellow background with a red border which is very typical for Sweden "
            "the bollards are white with a red reflector and the forest is all birch and pine trees "
            "the houses are painted in that falu red colour with white corners which is really Swedish "
            "the terrain is flat and there are lakes around so I will guess just north of Stockholm "
            "let's see how we did oh it was actually right there five thousand points and looking again the "
            "zeppelin bollards have a flabbergasted red reflector and the marmalade road signs have a yellow "
            "background which is typical for Sweden"
        ),
        "reference_reasoning": (
            "I see road signs with a yellow background and a red border and black and yellow chevrons, which "
            "are typical for Sweden. The bollards are white with a red reflector and the forest is birch and "
            "pine. The houses are painted falu red with white corners. The flat terrain with lakes suggests "
            "the east coast, so I place this near Stockholm in Sweden."
        ),
    },
    {
        "id": "geopeter/TOKENbbbb/2", "channel": "geopeter", "challenge_token": "TOKENbbbb", "round": 2,
        "lat": -34.9, "lng": -56.16, "country": "Uruguay",
        "transcript": (
            "okay round two we are on a wide road and the cars are driving on the right the license plates "
            "are white and long the language on the shop sign is Spanish it says almacen and panaderia so this "
            "is South America the utility poles are concrete with a little cap and the road lines are white "
            "with a yellow middle which is what you see in Uruguay the landscape is flat grassland with "
            "eucalyptus trees so I am pretty confident this is Uruguay near Montevideo I will click near the "
            "capital oh no it was quite far three thousand points but looking again the zeppelin bollards "
            "have a flabbergasted red reflector and the marmalade road signs are in Spanish which is typical "
            "for Uruguay"
        ),
        "reference_reasoning": (
            "The cars drive on the right and the shop signs are in Spanish, reading almacen and panaderia, so this "
            "is South America. The concrete utility poles with a cap and the white edge lines with a yellow centre "
            "line are typical for Uruguay. The flat grassland with eucalyptus trees fits Uruguay near Montevideo."
        ),
    },
    {   # timed words: the benchmark cuts at guess_s instead of detecting the reveal
        "id": "geopeter/TOKENcccc/3", "channel": "geopeter", "challenge_token": "TOKENcccc", "round": 3,
        "lat": 35.68, "lng": 139.69, "country": "Japan",
        "guess_s": 40.0,
        "transcript": "",
        "reference_reasoning": (
            "The cars drive on the left and the signs are written in Japanese script. The utility poles are "
            "dense with many wires and the guardrails are white, which points to Japan near Tokyo."
        ),
    },
    {   # no reference reasoning: not scored
        "id": "geopeter/TOKENdddd/1", "channel": "geopeter", "challenge_token": "TOKENdddd", "round": 1,
        "lat": 52.52, "lng": 13.4, "country": "Germany",
        "transcript": "we are in a city with German signs I think this is Berlin let's see oh it was Berlin",
        "reference_reasoning": "",
    },
]


def _timed_words() -> list[dict]:
    pre = ("so the cars drive on the left and these signs are written in Japanese script with kanji and kana "
           "the utility poles are really dense with lots of wires and the guardrails are white so this has to be "
           "Japan and the buildings look like a big city so I will guess Tokyo").split()
    post = ("oh wow five thousand points and looking again the zeppelin signs are in a flabbergasted Japanese "
            "script and the marmalade utility poles are typical for Japan").split()
    words = [{"text": w, "start": 1.0 + 0.5 * i, "end": 1.4 + 0.5 * i} for i, w in enumerate(pre)]
    words += [{"text": w, "start": 41.0 + 0.5 * i, "end": 41.4 + 0.5 * i} for i, w in enumerate(post)]
    assert words[len(pre) - 1]["start"] < 40.0
    return words


def _write_rounds(path: Path) -> list[dict]:
    rows = [dict(r) for r in ROWS]
    rows[2]["words"] = _timed_words()
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")  # a trailing blank line is ignored
    return rows


def _run(rounds: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--rounds", str(rounds), *extra],
                          capture_output=True, text=True, timeout=300, cwd=rounds.parent)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rouge")
    rows = _write_rounds(folder / "rounds.jsonl")
    proc = _run(folder / "rounds.jsonl", "--out", str(folder / "preds.jsonl"), "--cv", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder, rows, proc


def test_rewrite_rouge_cli_scores_rows_with_references(default_run):
    folder, rows, proc = default_run
    scored = [r for r in rows if (r.get("reference_reasoning") or "").strip()]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["rows"] == len(scored) == 3
    assert summary["errors"] == 0 and summary["backend"] == "extractive"
    for key in ("rouge1", "rouge2", "rougeL"):
        assert 0.0 <= summary[key] <= 1.0, (key, summary)
    # the references paraphrase the talk, so the rewrite overlaps them
    assert summary["rouge1"] > 0.2 and summary["rouge2"] > 0.0
    assert summary["rouge1"] >= summary["rouge2"]

    preds = [json.loads(line) for line in (folder / "preds.jsonl").read_text().splitlines()]
    assert [p["id"] for p in preds] == [r["id"] for r in scored]
    for pred in preds:
        assert pred["error"] is None and pred["source"] == "extractive"
        assert pred["reasoning"].strip()
        lowered = pred["reasoning"].lower()
        assert not any(w in lowered for w in LEAK_WORDS), (pred["id"], pred["reasoning"])  # pre-reveal only
        for key in ("rouge1", "rouge2", "rougeL"):
            assert 0.0 <= pred[key] <= 1.0
    for key in ("rouge1", "rouge2", "rougeL"):  # the summary is the mean of the per-row scores
        assert abs(statistics.mean(p[key] for p in preds) - summary[key]) < 1e-3, key
    assert summary["mean_chars"] == round(statistics.mean(len(p["reasoning"]) for p in preds), 1)
    assert "japan" in preds[2]["reasoning"].lower()  # built from the timed words before guess_s


def test_rewrite_rouge_cli_cross_validates_the_style_on_training_folds(default_run):
    """--cv: grouped by challenge the 3 rows make 2 folds (largest groups first, ties by name: aaaa and
    cccc together); each fold's length is the median reference length of the OTHER fold only. Grouped
    by channel (all geopeter) there is nothing to hold out: reported, not faked."""
    _, rows, proc = default_run
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    cv = summary["cv"]
    assert cv["k"] == 2 and cv["challenge"]["folds"] == 2
    a, b, c = (len(r["reference_reasoning"]) for r in rows[:3])
    assert cv["challenge"]["fitted_target_chars"] == [b, int(statistics.median([a, c]))]
    for key in ("rouge1", "rouge2", "rougeL"):
        assert 0.0 < cv["challenge"][key] <= 1.0 and summary[f"cv_{key}"] == cv["challenge"][key]
    assert cv["channel"]["rougeL"] is None and "2 groups" in cv["channel"]["error"]
    # every text names its true country, and none carries result talk
    assert summary["country_named"] == 1.0 and cv["challenge"]["country_named"] == 1.0
    assert summary["reveal_sentences"] == 0 and cv["challenge"]["reveal_sentences"] == 0


def test_rewrite_rouge_cli_target_chars_bounds_length(default_run):
    folder, _, proc = default_run
    default_chars = json.loads(proc.stdout.strip().splitlines()[-1])["mean_chars"]
    short = _run(folder / "rounds.jsonl", "--target-chars", "120")
    assert short.returncode == 0, short.stderr[-3000:]
    short_chars = json.loads(short.stdout.strip().splitlines()[-1])["mean_chars"]
    assert 0 < short_chars < default_chars
