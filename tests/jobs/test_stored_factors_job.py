"""Jobs with W in a store (``model.factors: store``): where it lives, resuming after a
crash and after a kill, and what a sweep refuses."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import dasknmf
from dasknmf.jobs.checkpoints import STATE, CorruptCheckpointError, read_checkpoint
from dasknmf.jobs.loading import parse_config
from dasknmf.jobs.runner import resume_job, run_job
from dasknmf.jobs.workarea import FACTORS, WorkArea
from tests.jobs.jobs_testing import StopAt, dense, run_killed_at_first_checkpoint
from tests.jobs.test_resume import assert_same_outputs, checkpointed


def stored(job: dict, **model) -> dict:
    job["model"].update(factors="store", persist=False, **model)
    return job


def in_memory(job: dict, **model) -> dict:
    """The reference: W in memory, V read as by the stored run (out of core, whose
    initialisation differs from a persisted V's)."""
    job["model"].update(factors="memory", persist=False, **model)
    return job


def test_a_stored_w_lives_in_the_work_area_and_ends_in_the_output(matrix_file, tmp_path):
    run_job(parse_config(in_memory(checkpointed(matrix_file, tmp_path / "ref"))))
    seen = []

    class Watch(StopAt):
        def iteration(self, info):
            seen.append(sorted(p.name for p in (work.path / FACTORS / "W").iterdir()))

    work = WorkArea(tmp_path / "out")
    run_job(parse_config(stored(checkpointed(matrix_file, tmp_path / "out"))), progress=Watch(0))
    assert seen and all("current.json" in names for names in seen)
    summary = assert_same_outputs(tmp_path / "out", tmp_path / "ref", rtol=1e-9)
    assert summary["config"]["model"]["factors"] == "store"
    assert not work.exists()  # removed with the rest of the work area


def test_a_stored_w_resumes_after_a_crash_to_the_uninterrupted_result(matrix_file, tmp_path):
    run_job(parse_config(in_memory(checkpointed(matrix_file, tmp_path / "ref"))))
    job = stored(checkpointed(matrix_file, tmp_path / "out"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_job(parse_config(job), progress=StopAt(10))
    resume_job(tmp_path / "out")
    summary = assert_same_outputs(tmp_path / "out", tmp_path / "ref", rtol=1e-9)
    assert summary["resumed"]["from_iteration"] == 8


def test_a_checkpoint_links_the_stored_factors_instead_of_copying_them(matrix_file, tmp_path):
    """The checkpoint's factors are the store's generation, hard-linked (no dense copy
    written); a checkpoint missing a chunk of one is refused by resume, naming it."""
    job = stored(checkpointed(matrix_file, tmp_path / "out"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_job(parse_config(job), progress=StopAt(10))
    (folder,) = [p for p in WorkArea(tmp_path / "out").checkpoints.iterdir() if p.is_dir()]
    assert sorted(p.name for p in folder.iterdir()) == ["H.factor.zarr", "W.factor.zarr"]
    W = read_checkpoint(folder.parent).state.W
    assert W.shape[1] == job["model"]["n_components"]
    assert np.isfinite(W.compute()).all() and W.compute().max() > 0

    chunk = next(p for p in (folder / "W.factor.zarr").rglob("*") if p.is_file() and
                 p.name != "zarr.json")  # fmt: skip
    chunk.unlink()
    with pytest.raises(CorruptCheckpointError, match=r"W\.factor\.zarr' is not a whole stored"):
        resume_job(tmp_path / "out")


# Slow: a crash mid-fit resumes above; a real kill -9 is in tests/jobs/test_resume.py.
@pytest.mark.slow
def test_a_stored_w_resumes_after_kill_9(matrix_file, tmp_path):
    """Killed mid-fit (SIGKILL, at its first checkpoint): the next run's store holds
    the committed generation only, and the resumed result is the uninterrupted one."""
    reference = in_memory(checkpointed(matrix_file, tmp_path / "ref", every=3), max_iter=60)
    run_job(parse_config(reference))
    job_file = tmp_path / "job.json"
    job = stored(checkpointed(matrix_file, tmp_path / "out", every=3), max_iter=60)
    job_file.write_text(json.dumps(job))
    work = WorkArea(tmp_path / "out")
    run_killed_at_first_checkpoint(job_file, work.checkpoints / STATE)
    assert len(list((work.path / FACTORS / "W").glob("g*.zarr"))) <= 2
    resume_job(tmp_path / "out")
    assert_same_outputs(tmp_path / "out", tmp_path / "ref", rtol=1e-9)


def test_a_given_factor_store_is_used_and_kept(matrix_file, tmp_path):
    job = stored(checkpointed(matrix_file, tmp_path / "out"), factor_store=str(tmp_path / "f"))
    run_job(parse_config(job))
    W_out = dense(dasknmf.open_matrix(tmp_path / "out" / "W.zarr").compute())
    pointer = json.loads((tmp_path / "f" / "W" / "current.json").read_text())
    assert pointer["shape"] == list(W_out.shape)
    assert np.isfinite(W_out).all()


def test_a_sweep_job_keeps_w_in_the_named_store(matrix_file, tmp_path):
    job = checkpointed(matrix_file, tmp_path / "out")
    store = tmp_path / "factors"
    job["model"].update(n_components=[2, 3], factors="store", factor_store=str(store))
    job["sweep"] = {"replicates": 2}
    job["report"] = {"plot": False}
    run_job(parse_config(job))
    # The stacked W, each of the 4 replicates' W once it stopped, and the consensus
    # model's factors for the suggested k.
    best = json.loads((tmp_path / "out" / "summary.json").read_text())["sweep"]["best_k"]
    listed = sorted(os.listdir(store))
    assert listed == sorted(["W", "W-0", "W-1", "W-2", "W-3", f"consensus-{best}"])
    assert {"H", "W"} <= set(os.listdir(store / f"consensus-{best}"))
