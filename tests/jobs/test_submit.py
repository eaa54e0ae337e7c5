"""``dasknmf submit``: ``run`` with the cluster replaced by the scheduler it names.

Jobs on real ``dask scheduler`` / ``dask worker`` processes are in ``tests/cluster``;
here an in-process ``LocalCluster`` and the errors that stop a job before it connects.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from distributed import LocalCluster

import dasknmf
from dasknmf.cli import EXIT_OK, EXIT_USAGE, main
from tests.jobs.jobs_testing import base_job


def test_submit_replaces_the_cluster_and_gives_runs_results(
    write_job, matrix_file, tmp_path, capsys
):
    job = base_job(matrix_file, tmp_path / "out")
    job["cluster"] = {"type": "local", "n_workers": 3, "dashboard": True}  # replaced
    path = write_job(job)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False) as cluster:
        address = cluster.scheduler_address
        args = ["submit", str(path), "--address", address, "--quiet"]
        assert main([*args, "--set", "cluster.threads=4"]) == EXIT_OK
    assert capsys.readouterr().out.endswith(f"\noutputs: {tmp_path / 'out'}\n")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["config"]["cluster"]["type"] == "existing"
    assert summary["config"]["cluster"]["address"] == address
    assert summary["scheduler"] == {**summary["scheduler"], "type": "existing", "workers": 1}

    assert (
        main(
            [
                "run",
                str(path),
                "--quiet",
                "--set",
                "output.directory=" + str(tmp_path / "r"),
                "--set",
                "cluster={type: threads}",
            ]
        )
        == EXIT_OK
    )
    for name in ("W.zarr", "H.zarr"):
        submitted = dasknmf.open_matrix(str(tmp_path / "out" / name)).compute()
        ran = dasknmf.open_matrix(str(tmp_path / "r" / name)).compute()
        np.testing.assert_allclose(submitted, ran, rtol=1e-5, atol=1e-9)


def test_submit_needs_a_scheduler(write_job, matrix_file, tmp_path, capsys):
    path = write_job(base_job(matrix_file, tmp_path / "out"))
    with pytest.raises(SystemExit) as exc:
        main(["submit", str(path)])
    assert exc.value.code == EXIT_USAGE
    assert "one of the arguments --scheduler-file --address is required" in capsys.readouterr().err


def test_missing_scheduler_file_is_an_error_not_a_wait(write_job, matrix_file, tmp_path, capsys):
    path = write_job(base_job(matrix_file, tmp_path / "out"))
    missing = tmp_path / "dask" / "scheduler.json"
    assert main(["submit", str(path), "--scheduler-file", str(missing)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"cluster.scheduler_file '{missing}' does not exist: start the scheduler" in err
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_a_scheduler_file(write_job, matrix_file, tmp_path, capsys):
    path = write_job(base_job(matrix_file, tmp_path / "out"))
    (tmp_path / "s.json").write_text("{}")
    assert main(["submit", str(path), "--scheduler-file", str(tmp_path / "s.json")]) == 2
    assert "is not a dask scheduler file (JSON with an 'address')" in capsys.readouterr().err


def test_tls_options_are_validated_as_the_job_files_keys(write_job, matrix_file, tmp_path, capsys):
    path = write_job(base_job(matrix_file, tmp_path / "out"))
    (tmp_path / "ca.pem").write_text("")
    args = ["submit", str(path), "--address", "tcp://127.0.0.1:8786"]
    tls = ["--tls-ca-file", str(tmp_path / "ca.pem"), "--tls-cert", str(tmp_path / "no.pem")]
    assert main([*args, *tls]) == EXIT_USAGE
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("(2 problems):")
    assert '--set cluster.address="tcp://127.0.0.1:8786": cluster.address' in lines[1]
    assert "must start with tls:// when cluster.tls is given" in lines[1]
    assert "the file" in lines[2] and "of 'cluster.tls.cert' does not exist" in lines[2]


def test_a_tls_scheduler_without_certificates_is_refused_before_connecting(
    write_job, matrix_file, tmp_path, capsys
):
    path = write_job(base_job(matrix_file, tmp_path / "out"))
    scheduler_file = tmp_path / "scheduler.json"
    scheduler_file.write_text(json.dumps({"address": "tls://127.0.0.1:1"}))
    assert main(["submit", str(path), "--scheduler-file", str(scheduler_file)]) == EXIT_USAGE
    assert "the scheduler at tls://127.0.0.1:1 requires TLS" in capsys.readouterr().err
