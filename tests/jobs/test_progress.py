"""What a job shows while it runs: plain lines at a log's rate without a terminal,
live bars with one, and every phase either way (issue 12)."""

from __future__ import annotations

import io
import json
import re
import time

import pytest

from dasknmf.callbacks import PhaseInfo
from dasknmf.cli import EXIT_OK, main
from dasknmf.cli import progress as progress_module
from dasknmf.cli.progress import ProgressPrinter
from dasknmf.fit_state import IterationInfo

STAMP = r"  \[\d\d:\d\d:\d\d\]$"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def info(iteration: int, error: float = 5.0) -> IterationInfo:
    return IterationInfo(iteration, error, 10.0, 0.1 * iteration, None, None)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_plain_lines_the_first_iterations_then_at_a_rate_and_always_the_last():
    out = io.StringIO()
    with ProgressPrinter(out, live=False, first=3, every_s=3600) as printer:
        printer.on_norm(20.0)
        for i in range(1, 10):
            printer.iteration(info(i))
        printer.event("fit: 9 iterations")
    written = lines(out)
    assert [line.split()[1] for line in written[:4]] == ["1", "2", "3", "9"]
    assert written[4] == "fit: 9 iterations"
    assert all(re.search(STAMP, line) for line in written[:4])
    assert "relative 0.2500" in written[0] and "0.100 s/iter" in written[3]


def test_plain_a_pending_iteration_is_written_when_its_time_comes_without_news():
    out = io.StringIO()
    with ProgressPrinter(out, live=False, first=1, every_s=0.2) as printer:
        printer.iteration(info(1))
        printer.iteration(info(2))  # within every_s of the first line: held back
        assert len(lines(out)) == 1
        time.sleep(1.0)  # the watcher writes it
        assert [line.split()[1] for line in lines(out)] == ["1", "2"]


def test_plain_a_phase_without_news_is_written_about_until_it_ends():
    out = io.StringIO()
    with ProgressPrinter(out, live=False, quiet_s=0.2, every_s=0.3) as printer:
        printer.on_phase(PhaseInfo("statistics", 0.0))
        time.sleep(1.3)
        printer.on_phase(PhaseInfo("statistics", 1.3, finished=True))
        printer.on_phase(PhaseInfo("checkpoint", 0.0))  # quick: nothing at all
        printer.on_phase(PhaseInfo("checkpoint", 0.01, finished=True))
    written = lines(out)
    assert len(written) >= 3, written
    assert all(line.startswith("statistics ") and re.search(STAMP, line) for line in written)
    assert re.search(r"\d\.\ds  ", written[1]) and float(written[1].split()[1][:-1]) >= 0.4
    assert " done " in written[-1] and all(" done " not in line for line in written[:-1])


def test_live_bars_for_phases_and_iterations_with_the_steps_above_them():
    out = Terminal()
    with ProgressPrinter(out, quiet_s=0.0) as printer:
        assert printer.live
        printer.on_phase(PhaseInfo("initialization (nndsvda)", 0.0, passes=1, total_passes=3))
        printer.on_phase(PhaseInfo("initialization (nndsvda)", 0.5, finished=True))
        printer.on_start(20)
        printer.on_norm(20.0)
        printer.iteration(info(1))
        printer.event("checkpoint: iteration 1")
        printer.iteration(info(2, 4.0))
    text = out.getvalue()
    assert "\r" in text  # redrawn in place
    assert "initialization (nndsvda)" in text and "1/3" in text
    assert "initialization (nndsvda): 0.5 s\n" in text
    assert "checkpoint: iteration 1\n" in text
    assert re.search(r"iter: +\d+%.*\| 2/20 .*error 4\.000000e\+00  relative 0\.2000", text)


def job_file(tmp_path) -> str:
    job = {
        "input": {"path": "example:term-document", "rows": 400, "cols": 120},
        "model": {"n_components": 4, "max_iter": 5, "random_state": 0},
        "output": {"directory": str(tmp_path / "out")},
        "report": {"plot": False},
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    return str(path)


PHASES = ("input", "statistics", "initialization (nndsvda)", "writing outputs")


def test_a_job_without_a_terminal_writes_every_phase(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress_module, "QUIET_S", 0.0)  # write about quick phases too
    assert main(["run", job_file(tmp_path)]) == EXIT_OK
    out = capsys.readouterr().out
    for phase in PHASES:
        assert re.search(rf"^{re.escape(phase)} +done +\d+\.\ds{STAMP}", out, re.M), phase
    assert re.search(rf"^iter     5  error .*{STAMP}", out, re.M)
    assert "\r" not in out


def test_a_job_on_a_terminal_draws_bars(tmp_path, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    monkeypatch.setattr(progress_module, "QUIET_S", 0.0)
    assert main(["run", job_file(tmp_path)]) == EXIT_OK
    text = terminal.getvalue()
    for phase in PHASES:
        assert f"{phase}: " in text, phase
    assert re.search(r"\| 5/5 ", text) and "s/iter" in text
    assert "outputs: " in text and "\niter     1  error" not in text


@pytest.mark.parametrize("live", [False, True])
def test_a_sweeps_iterations_show_the_replicates_running(live):
    from dasknmf.sweep.loop import SweepProgress

    out = Terminal() if live else io.StringIO()
    with ProgressPrinter(out, live=live) as printer:
        printer.iteration(SweepProgress(1, 9, 9, 0.5))
    assert re.search(r"running +9 of 9 replicates", out.getvalue())
