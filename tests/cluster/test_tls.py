"""A TLS cluster: certificates from ``deploy/tls/make-certs.sh``, scheduler and a worker
(with its nanny) from ``start-cluster.sh --tls-dir``, a job submitted with
``--tls-*``; and ``stop-cluster.sh`` leaves no process behind."""

from __future__ import annotations

import shutil
import ssl
import subprocess

import psutil
import pytest

from dasknmf.cli import EXIT_USAGE, main
from tests.cluster.conftest import MAKE_CERTS, start_cluster, stop_cluster
from tests.cluster.test_processes import check_outputs, submit, write_job


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: deploy/tls/make-certs.sh needs it")
    out = tmp_path_factory.mktemp("tls")
    command = [str(MAKE_CERTS), "--out", str(out), "--host", "localhost"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return out


def test_make_certs_signs_every_certificate_with_the_ca(certs):
    for name in ("scheduler", "worker", "client"):
        context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        context.load_cert_chain(str(certs / f"{name}.pem"), str(certs / f"{name}-key.pem"))
        done = subprocess.run(
            ["openssl", "x509", "-in", str(certs / f"{name}.pem"), "-noout", "-text"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "IP Address:127.0.0.1" in done.stdout and "DNS:localhost" in done.stdout
        assert oct((certs / f"{name}-key.pem").stat().st_mode & 0o777) == "0o600"
    again = subprocess.run([str(MAKE_CERTS), "--out", str(certs)], capture_output=True, text=True)
    assert again.returncode == 2 and "use --force" in again.stderr


@pytest.mark.slow
def test_job_on_a_tls_cluster(certs, store, reference, tmp_path, capsys):
    run_dir = tmp_path / "run"
    try:
        cluster = start_cluster(run_dir, "--n-workers", "1", "--tls-dir", str(certs))
        assert cluster.address.startswith("tls://127.0.0.1:")
        nanny = psutil.Process(cluster.pid("worker-0"))
        worker = nanny.children(recursive=True)
        assert worker  # the worker runs in a child of its nanny
        processes = [psutil.Process(cluster.pid("scheduler")), nanny, *worker]

        output = tmp_path / "out"
        job = write_job(tmp_path / "job.yaml", store, output)
        target = ["--scheduler-file", str(cluster.scheduler_file)]
        tls = [
            "--tls-ca-file",
            str(certs / "ca.pem"),
            "--tls-cert",
            str(certs / "client.pem"),
            "--tls-key",
            str(certs / "client-key.pem"),
        ]
        # Without certificates the job stops before it connects, saying why.
        assert main(["submit", str(job), *target, "--quiet"]) == EXIT_USAGE
        assert "requires TLS: give cluster.tls" in capsys.readouterr().err
        done = submit(job, *target, *tls, "--quiet")
        assert done.returncode == 0, done.stderr
        summary = check_outputs(output, reference)
        assert summary["scheduler"]["address"] == cluster.address
        assert summary["config"]["cluster"]["tls"]["cert"] == str(certs / "client.pem")
    finally:
        stop_cluster(run_dir)
    _, alive = psutil.wait_procs(processes, timeout=5)
    assert not alive
    assert not list(run_dir.glob("*.pid")) and not cluster.scheduler_file.exists()
