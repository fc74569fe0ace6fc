"""Start-up of the command line: ``inventory --help`` against ``import typer, rich``.

Run on demand (not part of the tests):

    .venv/bin/python benchmarks/cli_bench.py --runs 15

The anchor, measured in the same run, is the bare start of the two libraries the
command line is built on (``python -c "import typer, rich"``); the target is
``inventory --help`` within 2x of it (heavy libraries — geopandas, folium, scipy — load
only inside the commands that use them). Printed: the median of each over ``--runs``
runs, and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def _median_seconds(args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    anchor = _median_seconds([sys.executable, "-c", "import typer, rich"], runs)
    # a subcommand's help also loads typer's parameter adapters (pydantic): typer's cost,
    # shown for information, without a target
    cases = {
        "inventory --help": ([str(VENV_BIN / "inventory"), "--help"], "target <= 2.00x"),
        "inventory --version": ([str(VENV_BIN / "inventory"), "--version"], "target <= 2.00x"),
        "inventory map --help": ([str(VENV_BIN / "inventory"), "map", "--help"], "typer adapters"),
    }
    print(f"anchor  import typer, rich       {anchor * 1000:7.1f} ms")
    for name, (args, note) in cases.items():
        took = _median_seconds(args, runs)
        print(f"        {name:<24} {took * 1000:7.1f} ms  {took / anchor:5.2f}x ({note})")


if __name__ == "__main__":
    main()
