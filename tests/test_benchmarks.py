"""The benchmark scripts still run (tiny sizes): their tables are what docs/ records."""

from __future__ import annotations

import re

import pytest

from benchmarks import (
    bench_factors,
    bench_fit,
    bench_gpu,
    bench_masked,
    bench_mu,
    bench_out_of_core,
    bench_ratings,
    bench_scaling,
    bench_startup,
    bench_sweep,
    bench_tiles,
    bench_time_to_answer,
    bench_time_to_loss,
)


@pytest.mark.parametrize(
    ("module", "header"),
    [
        (bench_mu, "| implementation | s / iteration | ratio to scikit-learn |"),
        (bench_gpu, "| implementation | s / iteration | ratio to the floor |"),
        (bench_time_to_loss, "| method | iterations to target |"),
        (bench_time_to_answer, "| in memory | dasknmf wall s | scikit-learn wall s | wall ratio"),
        # Six fits, each in a fresh process: 17 s.
        pytest.param(
            bench_fit,
            "| fit | library | input | statistics | initialisation |",
            marks=pytest.mark.slow,
        ),
        (bench_masked, "| implementation | s / iteration | ratio to bare SciPy loop |"),
        (bench_tiles, "| tile shape | tiles | CSR MiB per tile | mode | s / iteration |"),
        # --smoke never starts Spark (pyspark is optional; the ratios are then n/a).
        (bench_ratings, "| ratings | fit | wall s | train RMSE | held-out RMSE |"),
        (bench_sweep, "| replicates per rank | one after another (s) | sweep (s) | ratio |"),
        (bench_startup, "| command | median s | min s | max s | ratio to python -c pass |"),
        # These start LocalClusters of worker processes: tens of seconds each.
        pytest.param(
            bench_out_of_core,
            "| measurement | seconds | ratio to in memory |",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            bench_factors,
            "| W kept | s/iteration | ratio to memory | worker high-water (max) |",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            bench_scaling,
            "| f | (m + n) · k · 4 | transferred / iteration | ratio |",
            marks=pytest.mark.slow,
        ),
    ],
    ids=lambda x: getattr(x, "__name__", "").rpartition(".")[2],
)
def test_benchmark_prints_its_table(module, header, capsys):
    module.main(["--smoke"])
    out = capsys.readouterr().out
    assert header in out
    lines = out.splitlines()
    headers = {lines[i - 1] for i, line in enumerate(lines) if line.startswith("| ---")}
    rows = [line for line in lines if line.startswith("| ") and line not in headers]
    rows = [row for row in rows if not row.startswith("| ---")]
    # Every table row below a header carries numbers (times, ratios).
    assert len(rows) >= 2 and all(re.search(r"\d\.\d", row) for row in rows)


def _dictd_number(value: int) -> str:
    digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    out = ""
    while True:
        value, rest = divmod(value, 64)
        out = digits[rest] + out
        if not value:
            return out


def test_the_dictd_reader_gives_each_entry_once(tmp_path):
    """benchmarks.corpora reads a dictd dictionary (index of base-64 offsets and
    lengths into a gzip'd text) as Debian's dict-gcide installs it."""
    import gzip

    from benchmarks.corpora import dictd_entries

    entries = [
        "00-database-short\n   A test dictionary\n",
        "Apple\n   a fruit\n",
        "Pear\n   another\n",
    ]
    text = "".join(entries)
    starts = [text.index(e) for e in entries]
    lines = [
        f"00-database-short\t{_dictd_number(starts[0])}\t{_dictd_number(len(entries[0]))}",
        f"apple\t{_dictd_number(starts[1])}\t{_dictd_number(len(entries[1]))}",
        f"Malus\t{_dictd_number(starts[1])}\t{_dictd_number(len(entries[1]))}",  # same entry
        f"pear\t{_dictd_number(starts[2])}\t{_dictd_number(len(entries[2]))}",
    ]
    (tmp_path / "d.index").write_text("\n".join(lines) + "\n")
    with gzip.open(tmp_path / "d.dict.dz", "wb") as file:
        file.write(text.encode())
    assert dictd_entries(tmp_path / "d") == entries[1:]
    with pytest.raises(FileNotFoundError, match="apt-get install dict-gcide"):
        dictd_entries(tmp_path / "missing")


@pytest.mark.slow
def test_the_memory_study_prints_a_peak_per_setting(capsys):
    bench_fit.main(["--memory-rows", "2000", "--k", "3"])
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.startswith(("| nndsvda |", "| random |"))]
    assert len(rows) == 4 and all(re.search(r"\| \d+ \| \d+ \| \d+\.\d\d \|$", r) for r in rows)
