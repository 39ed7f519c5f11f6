"""reproduce_paper.py: the dry-run plan and published tables, and a tiny real matrix beside them."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from navig_fixtures import make_scene_images, openai_server

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_prints_plan_and_published_tables(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "reproduce_paper.py"),
           "--model", "qwen2-vl=Qwen/Qwen2-VL-7B-Instruct", "--adapter", "qwen2-vl=runs/reasoner/adapter",
           "--benchmark", f"gws5k:{tmp_path / 'gws5k'}", "--benchmark", f"im2gps3k:{tmp_path / 'im2gps3k'}",
           "--out", str(tmp_path / "out"), "--dry-run"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "10 run(s):" in out  # 1 model x 2 benchmarks x 5 ablations
    for label in ("Navig", "w/o training", "w/o Reasoner", "w/o Searcher", "plain model"):
        assert label in out
    assert f"{tmp_path / 'out' / 'qwen2-vl' / 'gws5k' / 'no_searcher'}" in out
    # the published numbers, in the paper's units
    assert "| Navig (Qwen2-VL) | paper | 0.7 | 6.7 | 31.9 | 66.9 | 91.1 | 965 | 3,389 |" in out
    assert "| Navig (Qwen2-VL) | paper | 5.5 | 28.9 | 49.1 | 68.3 | 84.0 | 1,631 | 3,482 |" in out
    assert "| Qwen2-VL Reasoner | paper | 51.4 | 14.6 | 24.3 |" in out
    # the ablations from Tables 6/14: only 750/25/1 km are published, the rest is n/a
    assert "| w/o Searcher | paper | 0.2 | 5.8 | n/a | 67.0 | n/a | n/a | n/a |" in out
    assert "| plain model | paper | 5.3 | 29.9 | 48.9 | 65.0 | 75.0 | 2,483 | 3,237 |" in out
    assert "| qwen2-vl | im2gps3k | paper | rag: 213, osm: 21, comment: 493 |" in out
    assert "note: im2gps3k: the paper's settings box_threshold=0.8, text_threshold=0.6" in out
    last = json.loads(out.strip().splitlines()[-1])
    assert last == {"runs": 10, "dry_run": True, "samples_done": 0, "out": str(tmp_path / "out")}
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_bare_dry_run_plans_the_papers_model(tmp_path):
    """The README's `python benchmarks/reproduce_paper.py --dry-run`: no --model needed to see the plan."""
    script = str(ROOT / "benchmarks" / "reproduce_paper.py")
    proc = subprocess.run([sys.executable, script, "--dry-run"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "10 run(s):" in out  # the paper's model x gws5k, im2gps3k x 5 ablations
    full = next(line for line in out.splitlines() if "gws5k" in line and " Navig " in line)
    assert "model=Qwen/Qwen2-VL-7B-Instruct adapter=(to be given)" in full
    assert "runs/reproduce/qwen2-vl/gws5k/full (0 done)" in full
    assert "note: no --model given" in out
    assert "| Navig (Qwen2-VL) | paper | 0.7 | 6.7 | 31.9 | 66.9 | 91.1 | 965 | 3,389 |" in out
    assert json.loads(out.strip().splitlines()[-1]) == {"runs": 10, "dry_run": True, "samples_done": 0,
                                                       "out": "runs/reproduce"}
    assert list(tmp_path.iterdir()) == []  # a dry run writes nothing

    # a real run still needs the model, and says so
    from typer.testing import CliRunner

    from navig.cli import app

    result = CliRunner().invoke(app, ["reproduce", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "a real run needs at least one model" in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()


def test_paper_results_file_is_complete_for_the_quoted_numbers():
    from navig.eval.reproduce import PAPER_RESULTS, load_paper_results

    paper = load_paper_results(PAPER_RESULTS)
    full = next(r for r in paper["geolocation"] if r["ablation"] == "full")
    assert full["results"]["gws5k"]["mean_km"] == 965 and full["results"]["im2gps3k"]["geoscore"] == 3482
    assert {r["ablation"] for r in paper["geolocation"]} == {"full", "no_training", "no_reasoner", "no_searcher", "plain"}
    assert yaml.safe_load(PAPER_RESULTS.read_text())["metrics"][0] == "acc_1km"


def test_paper_ablations_are_filled_from_tables_6_and_14():
    """Tables 6/14 print ablations as changes from Navig at 750/25/1 km; the loader adds them up.
    Their vanilla-VLM line must agree with the full rows of Tables 2/13 (a check on the transcription)."""
    from navig.eval.reproduce import load_paper_results

    paper = load_paper_results()
    rows = {(r["model"], r["ablation"]): r for r in paper["geolocation"]}
    assert {m for m, _ in rows} == {"qwen2-vl", "llava", "minicpm-v"} and len(rows) == 15
    for (model, ablation), row in rows.items():
        for bench in ("gws5k", "im2gps3k"):
            assert row["results"][bench] is not None, (model, ablation, bench)
            assert all(row["results"][bench][k] is not None for k in ("acc_1km", "acc_25km", "acc_750km"))
    no_searcher = rows[("qwen2-vl", "no_searcher")]["results"]
    assert no_searcher["gws5k"] == {"acc_1km": 0.2, "acc_25km": 5.8, "acc_200km": None, "acc_750km": 67.0,
                                    "acc_2500km": None, "mean_km": None, "geoscore": None}
    assert rows[("qwen2-vl", "no_training")]["results"]["im2gps3k"]["acc_750km"] == 64.0  # 68.3 - 4.3
    assert rows[("qwen2-vl", "plain")]["results"]["gws5k"]["mean_km"] == 1124  # Table 2, vanilla Qwen2-VL
    # the paper itself disagrees on vanilla MiniCPM-V at GWS5k (Table 6 vs Table 2), noted in the YAML
    known = {("minicpm-v", "gws5k", "acc_750km"), ("minicpm-v", "gws5k", "acc_25km")}
    for model in ("qwen2-vl", "llava", "minicpm-v"):
        plain, full = rows[(model, "plain")], rows[(model, "full")]["results"]
        for bench, change in plain["change_from_full"].items():
            for key, delta in change.items():
                if (model, bench, key) not in known:
                    assert abs(full[bench][key] + delta - plain["results"][bench][key]) <= 0.1 + 1e-9, (model, bench, key)
    assert paper["benchmark_settings"]["im2gps3k"] == {"box_threshold": 0.8, "text_threshold": 0.6}
    assert {r["benchmark"]: r["counts"]["osm"] for r in paper["tool_usage"]} == {"gws5k": 70, "im2gps3k": 21}


def test_small_matrix_runs_and_compares(tmp_path):
    from navig.cli_eval import make_locate_options
    from navig.eval.reproduce import parse_model_specs, reproduce

    bench = tmp_path / "gws"
    images = make_scene_images(bench / "img", 2, size=(64, 48))
    (bench / "metadata.jsonl").write_text(
        json.dumps({"id": "a", "file_name": f"img/{images[0].name}", "lat": 48.8566, "lng": 2.3522}) + "\n"
        + json.dumps({"id": "b", "file_name": f"img/{images[1].name}", "lat": 35.6895, "lng": 139.6917}) + "\n")
    guess = json.dumps({"country": "France", "city": "Paris", "latitude": 48.8566, "longitude": 2.3522})
    from datasets import Dataset, DatasetDict
    from PIL import Image

    nc = tmp_path / "naviclues"
    DatasetDict({"test": Dataset.from_list([{"id": "r1", "reasoning": guess, "images": [Image.new("RGB", (8, 8))],
                                             "messages": [{"role": "user", "content": "where?"}]}])}).save_to_disk(str(nc))
    lines: list[str] = []
    with openai_server(lambda body: guess) as server:
        specs = parse_model_specs(["qwen2-vl=served-base"], ["qwen2-vl=navig-lora"])
        make = lambda s: make_locate_options(s.model, s.adapter, backend="openai", base_url=server.url + "/v1",  # noqa: E731
                                             extra={"detector": None})
        result = reproduce(specs, [f"gws5k:{bench}"], tmp_path / "out", ablations=["full", "no_searcher"],
                           make_options=make, echo=lines.append, naviclues=str(nc),
                           rouge_kwargs={"backend": "openai", "base_url": server.url + "/v1"})
        n_requests = len(server.requests)
        # resumable: a second pass locates nothing
        again = reproduce(specs, [f"gws5k:{bench}"], tmp_path / "out", ablations=["full", "no_searcher"],
                          make_options=make, echo=lines.append)
        assert len(server.requests) == n_requests
        # another adapter under the same model name: every stale run is named, nothing runs
        from navig.pipeline import SettingsMismatch

        other = parse_model_specs(["qwen2-vl=served-base"], ["qwen2-vl=other-lora"])
        with pytest.raises(SettingsMismatch) as refused:
            reproduce(other, [f"gws5k:{bench}"], tmp_path / "out", ablations=["full", "no_searcher"],
                      make_options=make, echo=lines.append)
        message = str(refused.value)
        assert "adapter: 'navig-lora' -> 'other-lora'" in message and str(tmp_path / "out" / "qwen2-vl" / "gws5k" / "full") in message
        assert str(tmp_path / "out" / "qwen2-vl" / "gws5k" / "no_searcher") in message
        assert len(server.requests) == n_requests
        planned: list[str] = []  # a dry run says so in its plan
        reproduce(other, [f"gws5k:{bench}"], tmp_path / "out", ablations=["full"], make_options=make,
                  echo=planned.append, dry_run=True)
        assert "(adapter: 'navig-lora' -> 'other-lora'): a real run refuses it without --restart" in planned[0]
    assert [p["done"] for p in again["plan"]] == [2, 2]
    full = result["ours"]["qwen2-vl/gws5k/full"]
    assert full["acc_1km"] == 0.5 and full["n"] == 2
    report = result["report"]
    # ours (50 % at every threshold), and the delta to the paper's 0.7 / 6.7 / 31.9 / 66.9 / 91.1
    assert "| | ours | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 |" in report
    assert "| | Δ | +49.3 | +43.3 | +18.1 | -16.9 | -41.1 |" in report
    assert "| qwen2-vl | gws5k | ours |" in report  # tool usage row
    # the Reasoner answered exactly the reference: ROUGE 100 against the paper's 51.4 / 14.6 / 24.3
    assert "| | ours | 100.0 | 100.0 | 100.0 |" in report
    assert "| | Δ | +48.6 | +85.4 | +75.7 |" in report
