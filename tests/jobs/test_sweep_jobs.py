"""Rank-sweep jobs: ``model.n_components`` as a list and the ``sweep`` section, their
validation, the outputs of ``dasknmf run``, ``dasknmf consensus``, and checkpoints
and resume (a sweep stopped and resumed ends as one that never stopped)."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dasknmf
from dasknmf.cli import EXIT_OK, EXIT_USAGE, main
from dasknmf.jobs import runner
from dasknmf.jobs.checkpoints import read_checkpoint, write_checkpoint
from dasknmf.jobs.config import SweepConfig
from dasknmf.jobs.inputs import PLANTED_RANK
from dasknmf.jobs.loading import load_config, parse_config
from dasknmf.jobs.runner import run_job
from dasknmf.jobs.sweep import sweep_params
from dasknmf.jobs.validation import JobConfigError
from dasknmf.jobs.workarea import WorkArea
from dasknmf.sweep.loop import SweepState
from tests.jobs.jobs_testing import (
    CONFIGS,
    StopAt,
    hidden,
    run_killed_at_first_checkpoint,
    steps,
    tree,
)

RANKS, REPLICATES = [2, 3, 4], 3


def sweep_job(output: Path, **sweep) -> dict:
    """A small sweep on the built-in example: 3 ranks x 3 replicates, HALS."""
    return {
        "input": {"path": "example:term-document", "rows": 120, "cols": 60},
        "model": {"n_components": RANKS, "max_iter": 40, "tol": 1e-3, "random_state": 0,
                  "check_every": 5},
        "sweep": {"replicates": REPLICATES, "holdout": 0.1, **sweep},
        "cluster": {"type": "threads", "threads": 2},
        "output": {"directory": str(output)},
    }  # fmt: skip


def problems(job: dict) -> list[str]:
    with pytest.raises(JobConfigError) as info:
        parse_config(job, "job.yaml")
    return [f"{p.key}: {p.message}" for p in info.value.problems]


# -- validation ------------------------------------------------------------------------


def test_a_list_of_ranks_makes_a_sweep_with_the_sweep_defaults(tmp_path):
    job = sweep_job(tmp_path / "out")
    del job["sweep"]
    config = parse_config(job)
    assert config.model.n_components == (2, 3, 4) and config.sweep == SweepConfig()
    assert config.to_dict()["model"]["n_components"] == [2, 3, 4]
    # The defaults are RankSweep's.
    defaults = dasknmf.RankSweep([2]).get_params()
    params = sweep_params(config)
    for key in ("n_replicates", "holdout", "density_threshold", "local_neighborhood"):
        assert params[key] == defaults[key], key
    assert params["solver"] is None and params["init"] == "random"  # the sweep's own choice
    # A single fit has no sweep, and its record no sweep section.
    single = parse_config({**job, "model": {"n_components": 3}})
    assert single.sweep is None and "sweep" not in single.to_dict()
    # A sweep section with one rank: replicates of that rank (stability, consensus).
    one = parse_config({**sweep_job(tmp_path / "o"), "model": {"n_components": 3}})
    assert one.sweep is not None and one.ranks == (3,)


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"model": {"n_components": [3, 3]}}, "model.n_components: The 'model.n_components' "
         "parameter lists the rank(s) [3] twice"),
        ({"model": {"n_components": [2, "x"]}}, "must be an int >= 1, or a non-empty list"),
        ({"model": {"n_components": []}}, "must be an int >= 1, or a non-empty list"),
        ({"sweep": {"replicas": 4}}, "sweep.replicas: unknown key 'sweep.replicas'; did you "
         "mean 'sweep.replicates'?"),
        ({"sweep": {"replicates": 0}}, "sweep.replicates: The 'sweep.replicates' parameter "
         "must be an int in [1, inf]; got 0."),
        ({"sweep": {"holdout": 0.7}}, "sweep.holdout: The 'sweep.holdout' parameter must be"),
        ({"sweep": {"consensus_k": 5}}, "sweep.consensus_k: sweep.consensus_k 5 is not one of "
         "the ranks swept, model.n_components = [2, 3, 4]"),
        ({"model": {"init": "nndsvda"}}, "model.init: model.init 'nndsvda' is deterministic"),
        ({"model": {"device": "cuda"}}, "'model.device' does not apply to a rank sweep"),
        ({"model": {"n_components": [2, 58]}}, "asks for k = 58, above min(m, n) = 54 of the "
         "108 x 54 block fitted after sweep.holdout 0.1"),
        ({"sweep": "many"}, "'sweep' must be a mapping"),
    ],
)  # fmt: skip
def test_sweep_problems_are_named_by_key(change, expected, tmp_path):
    job = sweep_job(tmp_path / "out")
    for section, values in change.items():
        job[section] = {**job[section], **values} if isinstance(values, dict) else values
    found = problems(job)
    assert any(expected in p for p in found), found


def test_validate_describes_a_sweep_and_refuses_with_exit_2(tmp_path, write_job, capsys):
    path = write_job(sweep_job(tmp_path / "out", consensus_k=3))
    assert main(["validate", str(path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "sweep      : k in [2, 3, 4] x 3 replicates, holdout 0.1" in out
    assert "the consensus of k = 3" in out
    assert (
        "\n  stopping   : each replicate stops at a check (every 5 iterations) where the "
        "error fell by less than 0.001 times the initial error since the previous check (the "
        "first: since the initial factors), or after 40 iterations\n"
    ) in out
    bad = write_job(sweep_job(tmp_path / "out", consensus_k=9), "bad.yaml")
    assert main(["validate", str(bad), "--set", "sweep.replicats=2"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "bad.yaml:" in err and "sweep.consensus_k 9 is not one of the ranks" in err
    assert "did you mean 'sweep.replicates'?" in err


def test_the_example_sweep_config_is_valid():
    config = load_config(CONFIGS / "sweep.yaml")
    assert config.sweep is not None and len(config.ranks) > 2


@pytest.mark.slow
def test_the_example_sweep_config_runs_and_finds_the_planted_rank(tmp_path, capsys):
    out = tmp_path / "sweep"
    started = time.perf_counter()
    assert main(["run", str(CONFIGS / "sweep.yaml"), "--quiet",
                 "--set", f"output.directory={out}"]) == EXIT_OK  # fmt: skip
    assert time.perf_counter() - started < 60
    assert f"best k: {PLANTED_RANK} (" in capsys.readouterr().out
    assert dasknmf.open_matrix(out / "H.zarr").shape == (PLANTED_RANK, 1000)


# -- run -------------------------------------------------------------------------------


def test_a_sweep_job_writes_its_outputs_and_equals_rank_sweep(tmp_path, write_job, capsys):
    out = tmp_path / "out"
    path = write_job(sweep_job(out))
    assert main(["run", str(path)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "\niter     1  running    9 of 9 replicates  " in printed
    assert re.search(r" s/iter  \[\d\d:\d\d:\d\d\]\n", printed) and "best k: " in printed
    assert sorted(os.listdir(out)) == sorted(
        ["H.zarr", "W.zarr", "components_k2.npy", "components_k3.npy", "components_k4.npy",
         "k_selection.csv", "k_selection.png", "replicates.csv", "summary.json", "zarr.json"]
    )  # fmt: skip
    table = pd.read_csv(out / "k_selection.csv")
    assert list(table["k"]) == RANKS
    assert {"train_error", "test_error", "stability", "n_iter", "converged"} <= set(table)
    replicates = pd.read_csv(out / "replicates.csv")
    assert len(replicates) == len(RANKS) * REPLICATES
    # The last line before the outputs: why the replicates stopped.
    stopped = replicates[replicates["converged"]]
    lo, hi = stopped["n_iter"].min(), stopped["n_iter"].max()
    ran_all = len(replicates) - len(stopped)
    assert len(stopped) > 0
    share = f"{len(stopped)} of 9 replicates" if ran_all else "every replicate"
    expected = f"{share} stopped by the tol rule (relative decrease < tol 0.001) "
    expected += f"at iteration {lo}" if lo == hi else f"at iterations {lo}-{hi}"
    expected += f"; {ran_all} ran all 40 iterations (max_iter)" if ran_all else ""
    expected += " (set model.tol: 0 to run every iteration)"
    assert steps(printed)[-2] == expected
    summary = json.loads((out / "summary.json").read_text())
    best = summary["sweep"]["best_k"]
    assert summary["sweep"]["consensus_k"] == best == summary["result"]["n_components"]
    assert [row["k"] for row in summary["sweep"]["per_k"]] == RANKS
    assert f"best k: {best} (the smallest k whose median held-out error" in printed

    # The job is the sweep run in Python on the same input.
    config = parse_config(sweep_job(out))
    X = dasknmf.datasets.term_document(120, 60, seed=0)
    sweep = dasknmf.RankSweep(**sweep_params(config)).fit(X)
    assert sweep.best_k_ == best
    for k in RANKS:
        H = np.load(out / f"components_k{k}.npy")
        assert H.shape == (REPLICATES, k, 60)
        np.testing.assert_allclose(H, sweep.components_[k], rtol=1e-6, atol=1e-10)
    consensus = sweep.consensus(best)
    H = dasknmf.open_matrix(out / "H.zarr").compute()
    W = dasknmf.open_matrix(out / "W.zarr").compute()
    assert H.shape == (best, 60) and W.shape == (120, best)
    np.testing.assert_allclose(H, consensus.components_, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(W, np.asarray(consensus.W_), rtol=1e-6, atol=1e-10)
    assert hidden(tmp_path) == []


def test_quiet_prints_the_result_but_no_progress(tmp_path, write_job, capsys):
    job = sweep_job(tmp_path / "out", consensus_k=4)
    job["report"] = {"plot": False}
    assert main(["run", str(write_job(job)), "--quiet"]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "s/iter" not in printed and "scheduler:" not in printed
    assert "best k: " in printed and "consensus: k = 4, error " in printed
    assert printed.rstrip().endswith(f"outputs: {tmp_path / 'out'}")
    assert "k_selection.png" not in os.listdir(tmp_path / "out")
    assert dasknmf.open_matrix(tmp_path / "out" / "H.zarr").shape == (4, 60)


# -- consensus -------------------------------------------------------------------------


def test_consensus_writes_another_rank_and_touches_nothing_else(tmp_path, capsys):
    out = tmp_path / "out"
    summary = run_job(parse_config(sweep_job(out, consensus_k=3))).summary
    before = tree(out)
    assert main(["consensus", str(out), "--k", "2"]) == EXIT_OK
    assert f"outputs: {out / 'consensus_k2'} (H.zarr, W.zarr, summary.json)" in (
        capsys.readouterr().out
    )
    assert {k: v for k, v in tree(out).items() if not k.startswith("consensus_k2")} == before
    assert dasknmf.open_matrix(out / "consensus_k2" / "H.zarr").shape == (2, 60)
    record = json.loads((out / "consensus_k2" / "summary.json").read_text())
    assert record["n_components"] == 2 and record["sweep_run_id"] == summary["run_id"]
    # The chosen rank again: the consensus the run wrote, without refitting the sweep.
    assert main(["consensus", str(out), "--k", "3"]) == EXIT_OK
    for name in ("H.zarr", "W.zarr"):
        again = dasknmf.open_matrix(out / "consensus_k3" / name).compute()
        np.testing.assert_array_equal(again, dasknmf.open_matrix(out / name).compute())
    assert hidden(tmp_path) == []
    # Refusals: exit 2, nothing written.
    before = tree(out)
    assert main(["consensus", str(out), "--k", "5"]) == EXIT_USAGE
    assert "--k 5: the sweep in" in capsys.readouterr().err
    assert main(["consensus", str(out), "--k", "2"]) == EXIT_USAGE
    assert "--overwrite" in capsys.readouterr().err
    assert tree(out) == before
    assert main(["consensus", str(out), "--k", "2", "--overwrite"]) == EXIT_OK


def test_consensus_refuses_what_is_not_a_sweep(tmp_path, capsys):
    job = sweep_job(tmp_path / "single")
    del job["sweep"]
    job["model"]["n_components"] = 2
    run_job(parse_config(job))
    assert main(["consensus", str(tmp_path / "single"), "--k", "2"]) == EXIT_USAGE
    assert "the output of a single fit, not of a rank sweep" in capsys.readouterr().err
    assert main(["consensus", str(tmp_path / "nothing"), "--k", "2"]) == EXIT_USAGE
    assert "is not the completed output of a dasknmf job" in capsys.readouterr().err


# -- checkpoints and resume ------------------------------------------------------------


def read_outputs(directory: Path) -> dict:
    found = {
        name: np.load(directory / name) for name in os.listdir(directory) if name.endswith(".npy")
    }
    for name in ("H.zarr", "W.zarr"):
        found[name] = dasknmf.open_matrix(directory / name).compute()
    return found


def assert_same_sweep(resumed: Path, reference: Path, rtol: float = 1e-6) -> dict:
    got, expected = read_outputs(resumed), read_outputs(reference)
    assert got.keys() == expected.keys()
    for name in got:
        np.testing.assert_allclose(got[name], expected[name], rtol=rtol, atol=1e-10, err_msg=name)
    a, b = (pd.read_csv(d / "replicates.csv") for d in (resumed, reference))
    pd.testing.assert_frame_equal(a, b, rtol=rtol)
    summary = json.loads((resumed / "summary.json").read_text())
    ref = json.loads((reference / "summary.json").read_text())
    assert summary["sweep"]["best_k"] == ref["sweep"]["best_k"]
    return summary


def test_a_sweep_checkpoint_reads_back_as_its_state(tmp_path):
    X = dasknmf.datasets.term_document(80, 40, seed=0)
    states: list[SweepState] = []
    keep = [lambda info: states.append(info.state())]
    sweep = dasknmf.RankSweep(
        [2, 3],
        n_replicates=2,
        max_iter=30,
        tol=1e-2,
        check_every=3,
        random_state=0,
        callbacks=keep,
    )
    sweep.fit(X)
    # One with replicates still running and finished ones, and the last (none running).
    middle = next(s for s in states if s.active and any(f is not None for f in s.finished))
    for state in (middle, states[-1]):
        write_checkpoint(tmp_path, state, {"note": 1})
        back = read_checkpoint(tmp_path).state
        assert isinstance(back, SweepState)
        assert (back.iteration, back.ranks, back.active, back.seed) == (
            state.iteration, state.ranks, state.active, state.seed
        )  # fmt: skip
        assert (back.check_error, back.error, back.errors) == (
            state.check_error, state.error, state.errors
        )  # fmt: skip
        if state.active:
            np.testing.assert_array_equal(back.W.compute(), state.W)
            np.testing.assert_array_equal(back.H.compute(), state.H)
        for a, b in zip(back.finished, state.finished, strict=True):
            assert (a is None) == (b is None)
            if a is not None:
                assert (a.n_iter, a.error, a.converged, a.errors) == (
                    b.n_iter, b.error, b.converged, b.errors
                )  # fmt: skip
                np.testing.assert_array_equal(a.H, b.H)
                np.testing.assert_array_equal(a.W, b.W)


def test_a_stopped_sweep_job_resumes_to_the_uninterrupted_outputs(tmp_path, capsys):
    job = sweep_job(tmp_path / "out")
    job["checkpoint"] = {"every": 4}
    job["report"] = {"plot": False}
    run_job(parse_config({**job, "output": {"directory": str(tmp_path / "ref")}}))
    with pytest.raises(RuntimeError, match="simulated crash at iteration 18"):
        run_job(parse_config(job), progress=StopAt(18))
    work = WorkArea(tmp_path / "out")
    checkpoint = read_checkpoint(work.checkpoints)
    assert isinstance(checkpoint.state, SweepState) and checkpoint.state.iteration == 16
    assert any(f is not None for f in checkpoint.state.finished)  # some had stopped
    assert main(["resume", str(tmp_path / "out")]) == EXIT_OK
    out = capsys.readouterr().out
    assert "resuming from the checkpoint at iteration 16" in out
    assert "\niter    17  running" in out and "\niter    16  running" not in out
    summary = assert_same_sweep(tmp_path / "out", tmp_path / "ref")
    assert summary["resumed"]["from_iteration"] == 16
    assert hidden(tmp_path) == []


def test_a_stored_sweep_job_links_w_into_its_checkpoints_and_resumes(tmp_path, capsys):
    job = sweep_job(tmp_path / "out")
    job["model"]["factors"] = "store"
    job["checkpoint"] = {"every": 4}
    job["report"] = {"plot": False}
    reference = {**job, "model": {**job["model"], "factors": "memory"}}
    run_job(parse_config({**reference, "output": {"directory": str(tmp_path / "ref")}}))
    with pytest.raises(RuntimeError, match="simulated crash at iteration 18"):
        run_job(parse_config(job), progress=StopAt(18))
    work = WorkArea(tmp_path / "out")
    checkpoint = read_checkpoint(work.checkpoints)
    state = checkpoint.state
    assert state.iteration == 16 and state.active
    assert any(f is not None for f in state.finished)
    # The running replicates' W is the store's generation, linked, not copied.
    (folder,) = [p for p in work.checkpoints.iterdir() if p.is_dir()]
    assert (folder / "W.factor.zarr").is_dir() and not (folder / "W.zarr").exists()
    assert main(["resume", str(tmp_path / "out")]) == EXIT_OK
    assert "resuming from the checkpoint at iteration 16" in capsys.readouterr().out
    assert_same_sweep(tmp_path / "out", tmp_path / "ref")
    assert hidden(tmp_path) == []


@pytest.mark.slow
def test_run_resume_continues_a_sweep_of_the_same_job_only(tmp_path):
    job = sweep_job(tmp_path / "out")
    job["checkpoint"] = {"every": 4}
    job["report"] = {"plot": False}
    run_job(parse_config({**job, "output": {"directory": str(tmp_path / "ref")}}))
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_job(parse_config({**job, "output": {"directory": str(tmp_path / "again")}}),
                progress=StopAt(10))  # fmt: skip
    other = {**job, "output": {"directory": str(tmp_path / "again")}}
    other["sweep"] = {**job["sweep"], "replicates": 2}
    with pytest.raises(runner.UnfinishedRunError, match=r"sweep\.replicates: 3 -> 2"):
        run_job(parse_config(other), resume=True)
    same = {**job, "output": {"directory": str(tmp_path / "again")}}
    run_job(parse_config(same), resume=True)
    assert_same_sweep(tmp_path / "again", tmp_path / "ref")


@pytest.mark.slow
def test_kill_9_of_a_sweep_then_resume_equals_an_uninterrupted_run(tmp_path):
    """``dasknmf run`` of a sweep in a subprocess, killed with SIGKILL after its first
    checkpoint; ``dasknmf resume`` ends with the outputs of a run never killed."""
    X = dasknmf.datasets.term_document(3000, 800, seed=1)
    dasknmf.write_matrix(X, tmp_path / "V.zarr", chunks=(750, 800))
    job = sweep_job(tmp_path / "out")
    job["input"] = {"path": str(tmp_path / "V.zarr")}
    job["model"].update(n_components=[4, 8, 12], max_iter=60, tol=1e-4, persist=True)
    job["checkpoint"] = {"every": 2}
    job["report"] = {"plot": False}
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps(job))
    state = WorkArea(tmp_path / "out").checkpoints / "state.json"
    run_killed_at_first_checkpoint(path, state, timeout=120)
    killed_at = read_checkpoint(state.parent).state.iteration
    assert main(["resume", str(tmp_path / "out"), "--quiet"]) == EXIT_OK
    job["output"]["directory"] = str(tmp_path / "ref")
    run_job(parse_config(job))
    summary = assert_same_sweep(tmp_path / "out", tmp_path / "ref", rtol=1e-5)
    assert summary["resumed"]["from_iteration"] == killed_at
    assert sorted(os.listdir(tmp_path)) == ["V.zarr", "job.yaml", "out", "ref"]
