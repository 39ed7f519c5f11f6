import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

# tests never reach the internet: hub libraries must not try
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.exists():
        pytest.skip("../shared reference data is absent")
    return SHARED


def collect_cmd() -> list[str]:
    """The real console entry point, run in a subprocess with this interpreter."""
    return [sys.executable, "-m", "collect.cli"]


def card_drop_table(card: str) -> dict[str, int]:
    """{reason: rounds} from the card's drops table ({} when it says "No drops.")."""
    section = card.split("## Filters and drops", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    if "No drops." in section:
        return {}
    start = lines.index("| reason | rounds | example |")
    table = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        table[cells[0]] = int(cells[1])
    return table
