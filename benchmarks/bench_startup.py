"""Start-up time of ``import dasknmf`` and the ``dasknmf`` command, and the install size.

Each command runs in a fresh interpreter, ``--runs`` times, interleaved (so that a
busy moment of a shared machine spreads over all of them); the reference is a bare
``python -c pass`` measured in the same run. The install size adds up the files of
every installed distribution that ``pip install dasknmf`` pulls in (its required
dependencies, recursively), then of each extra, from the distributions' own records.

    python -m benchmarks.bench_startup            # 10 runs each
    python -m benchmarks.bench_startup --smoke    # 1 run each (the test suite)
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from benchmarks.common import machine

#: (what, Python code run by ``python -c``).
COMMANDS = [
    ("python -c pass (reference)", "pass"),
    ("import dasknmf", "import dasknmf"),
    ("dasknmf --version", "from dasknmf.cli import main; main(['--version'])"),
    ("dasknmf --help", "from dasknmf.cli import main; main(['--help'])"),
    ("import dasknmf; dasknmf.NMF", "import dasknmf; dasknmf.NMF"),
    ("import dasknmf.jobs.runner (dasknmf run)", "import dasknmf.jobs.runner"),
]

EXTRAS = ("anndata", "dashboard", "slurm", "test")


def time_commands(runs: int, commands: Sequence[tuple[str, str]]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {what: [] for what, _ in commands}
    for _ in range(runs):
        for what, code in commands:
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", code], check=False, capture_output=True, timeout=120
            )
            times[what].append(time.perf_counter() - start)
    return times


def _name(requirement: str) -> tuple[str, str | None]:
    """The distribution a requirement names, and the extra it belongs to (if any)."""
    name = re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0]
    extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", requirement)
    return name.lower().replace("_", "-"), extra.group(1) if extra else None


def closure(roots: Sequence[str]) -> set[str]:
    """The installed distributions that ``roots`` require, recursively (no extras)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional dependency (or one for another platform)
        seen.add(name)
        for requirement in dist.requires or []:
            dep, extra = _name(requirement)
            if extra is None and "platform_system" not in requirement:
                todo.append(dep)
    return seen


def size_mb(names: set[str]) -> float:
    total = 0
    for name in names:
        for file in metadata.distribution(name).files or []:
            path = Path(file.locate())
            if path.is_file():
                total += path.stat().st_size
    return total / 1e6


def install_sizes() -> list[tuple[str, int, float]]:
    requirements = metadata.distribution("dasknmf").requires or []
    required = [dep for dep, extra in map(_name, requirements) if extra is None]
    core = closure(["dasknmf", *required])
    rows = [("pip install dasknmf", len(core), size_mb(core))]
    for extra in EXTRAS:
        deps = [dep for dep, e in map(_name, requirements) if e == extra]
        added = closure(deps) - core
        rows.append((f"  + [{extra}]", len(added), size_mb(added)))
    # What leaving one required dependency out would save: it, and what only it needs.
    for name in ("numba", "pyarrow", "matplotlib", "pandas"):
        own = core - {"dasknmf"} - closure([dep for dep in required if dep != name])
        rows.append((f"  of which {name} alone", len(own), size_mb(own)))
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="one run of each")
    args = parser.parse_args(argv)
    runs = 1 if args.smoke else args.runs

    print(machine("dask", "scikit-learn"))
    # --smoke leaves out the commands that load everything (seconds each).
    times = time_commands(runs, COMMANDS[:4] if args.smoke else COMMANDS)
    reference = statistics.median(times[COMMANDS[0][0]])
    print(f"\n{runs} runs each, interleaved; wall seconds of a fresh interpreter\n")
    print("| command | median s | min s | max s | ratio to python -c pass |")
    print("| --- | --- | --- | --- | --- |")
    for what, values in times.items():
        median = statistics.median(values)
        print(
            f"| {what} | {median:.3f} | {min(values):.3f} | {max(values):.3f} "
            f"| {median / reference:.1f} |"
        )
    print("\n| installed with | distributions | MB on disk |")
    print("| --- | --- | --- |")
    for what, count, mb in install_sizes():
        print(f"| {what} | {count} | {mb:.1f} |")


if __name__ == "__main__":
    main()
