"""Reproduce Navig's tables: models x benchmarks x ablations, resumably, beside the published numbers.

    python benchmarks/reproduce_paper.py --model qwen2-vl=Qwen/Qwen2-VL-7B-Instruct \
        --adapter qwen2-vl=runs/reasoner/adapter \
        --benchmark gws5k:data/gws5k --benchmark im2gps3k:data/im2gps3k \
        --naviclues data/naviclues --out runs/reproduce [--dry-run]

Same as `navig reproduce`. The published numbers live in navig/eval/paper_results.yaml. The last
stdout line is a JSON object: {"runs", "dry_run", "samples_done", "out"}.
"""
from __future__ import annotations

import typer

from navig.cli_eval import reproduce_command


def main() -> None:
    app = typer.Typer(add_completion=False)
    app.command()(reproduce_command)
    app()


if __name__ == "__main__":
    main()
