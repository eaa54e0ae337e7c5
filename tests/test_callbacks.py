"""Observers of a fit: the phases before the first iteration are reported."""

from __future__ import annotations

import io

import dask.array as da

from dasknmf import NMF, callbacks
from dasknmf.callbacks import PhaseInfo, PrintProgress
from tests.helpers import make_matrix


class Recorder:
    def __init__(self):
        self.phases: list[PhaseInfo] = []

    def __call__(self, info):
        pass

    def on_phase(self, info: PhaseInfo) -> None:
        self.phases.append(info)


def test_observers_hear_the_statistics_and_every_read_of_the_initialisation(monkeypatch):
    monkeypatch.setattr(callbacks, "_TASK_EVENT_S", 0.0)
    X = da.from_array(make_matrix(90, 40, density=0.3), chunks=(30, 20), asarray=False)
    recorder = Recorder()
    NMF(3, init="nndsvda", random_state=0, max_iter=2, callbacks=[recorder]).fit(X)
    names = [info.phase for info in recorder.phases]
    assert names[0] == "statistics" and names[-1] == "initialization (nndsvda)"
    ends = [info.phase for info in recorder.phases if info.finished]
    assert ends == ["statistics", "initialization (nndsvda)"]
    passes = [(i.passes, i.total_passes) for i in recorder.phases if i.total_passes]
    # k = 3 < 0.1 · 40: scikit-learn's 7 power iterations, one read of V each, plus one.
    assert passes == sorted(passes) and sorted(set(passes)) == [(p, 8) for p in range(1, 9)]
    # Tasks of the local scheduler are counted as they finish.
    tasks = [(i.tasks, i.total_tasks) for i in recorder.phases if i.total_tasks]
    assert tasks and all(0 < done <= total for done, total in tasks)


def test_print_progress_writes_phases_that_last(monkeypatch):
    stream = io.StringIO()
    quick = PrintProgress(stream, quiet_s=60.0)
    chatty = PrintProgress(stream, quiet_s=0.0, phase_every_s=0.0)
    X = make_matrix(60, 30, density=0.3)  # k = 3 ≥ 0.1 · 30: 4 power iterations
    NMF(3, random_state=0, max_iter=1, callbacks=[quick]).fit(X)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("iter     1")  # quick phases: silent
    stream.seek(0), stream.truncate()
    NMF(3, random_state=0, max_iter=1, callbacks=[chatty]).fit(X)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("statistics") and lines[0].endswith("s")
    assert any(line.startswith("statistics") and "  done  " in line for line in lines)
    assert any(
        line.startswith("initialization (nndsvda)") and "reads of V 5/5" in line for line in lines
    )
    assert any(
        line.startswith("initialization (nndsvda)") and "  done  " in line for line in lines
    )
    assert lines[-1].startswith("iter     1")


def test_a_slow_phase_is_written_at_a_limited_rate():
    stream = io.StringIO()
    progress = PrintProgress(stream, quiet_s=2.0, phase_every_s=10.0)
    for elapsed in (0.5, 1.0, 2.5, 3.0, 12.0, 12.5, 25.0):
        progress.on_phase(PhaseInfo("statistics", elapsed, tasks=1, total_tasks=9))
    progress.on_phase(PhaseInfo("statistics", 26.0, finished=True))
    lines = stream.getvalue().splitlines()
    assert [line.split()[-1] for line in lines] == ["2.5s", "12.5s", "25.0s", "26.0s"]
    assert "tasks 1/9" in lines[0] and "done" in lines[-1]
