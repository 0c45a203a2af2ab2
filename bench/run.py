"""Run every benchmark in bench/ and print one table: each figure, its target, and whether it holds.

    .venv/bin/python -m bench.run              # all of them
    .venv/bin/python -m bench.run perks        # some of them, by module name

Each benchmark module has a ``run()`` returning its figures, every one a ratio measured side by side in one
run (see harness.py); each runs in a process of its own. The combined table is also written to
``bench/results/all.json``. The command exits non-zero when a target does not hold, or when a benchmark fails
to run.
"""

import importlib
import json
import pkgutil
import subprocess
import sys
import traceback
from dataclasses import asdict
from pathlib import Path

from bench.harness import Figure

# The load test (bench/load/) passes or fails on its own checks, with no ratios: `python -m bench.load`.
NOT_BENCHMARKS = {"harness", "load", "run", "settings", "urls"}
HERE = Path(__file__).resolve().parent


def benchmark_modules() -> list[str]:
    return sorted(info.name for info in pkgutil.iter_modules([str(HERE)]) if info.name not in NOT_BENCHMARKS)


def main(names: list[str]) -> int:
    chosen = names or benchmark_modules()
    unknown = set(chosen) - set(benchmark_modules())
    if unknown:
        print(f"No such benchmark: {', '.join(sorted(unknown))}. Known: {', '.join(benchmark_modules())}")
        return 2
    rows: list[tuple[str, Figure]] = []
    failed: list[str] = []
    for name in chosen:
        print(f"running bench.{name} ...", flush=True)
        figures = _run_apart(name)
        if figures is None:  # one broken benchmark must not hide the others' figures
            failed.append(name)
        else:
            rows += [(name, figure) for figure in figures]
    _print(rows, failed)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / "all.json").write_text(
        json.dumps(
            {"figures": [{"benchmark": name, **asdict(figure)} for name, figure in rows], "failed": failed},
            indent=2,
        )
    )
    return 0 if rows and not failed and all(figure.holds for _, figure in rows) else 1


_MARK = "bench.run figures: "


def _run_apart(name: str) -> list[Figure] | None:
    """Run one benchmark in a process of its own (a benchmark that calls the code directly sets Django up on its
    own database, once per process); its output passes through, and its figures come back as JSON."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.run", "--one", name], cwd=HERE.parent, stdout=subprocess.PIPE, text=True
    )
    figures = None
    for line in process.stdout:
        if line.startswith(_MARK):
            figures = [Figure(**figure) for figure in json.loads(line[len(_MARK) :])]
        else:
            print(line, end="", flush=True)
    return figures if process.wait() == 0 else None


def _run_one(name: str) -> int:
    try:
        figures = importlib.import_module(f"bench.{name}").run()
    except Exception:
        traceback.print_exc()
        return 1
    print(_MARK + json.dumps([asdict(figure) for figure in figures]), flush=True)
    return 0


def _print(rows: list[tuple[str, Figure]], failed: list[str]) -> None:
    width = max([len(f"{name}: {figure.name}") for name, figure in rows] + [10])
    print()
    print(f"{'figure'.ljust(width)}  {'value':>8}  {'target':<12} holds")
    for name, figure in rows:
        holds = "yes" if figure.holds else "NO"
        print(f"{f'{name}: {figure.name}'.ljust(width)}  {figure.value:>8.3f}  {figure.target:<12} {holds}")
    for name in failed:
        print(f"{name.ljust(width)}  {'':>8}  {'':<12} FAILED TO RUN")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        sys.exit(_run_one(sys.argv[2]))
    sys.exit(main(sys.argv[1:]))
