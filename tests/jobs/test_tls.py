"""Certificates that cannot connect a job: a clear error naming the file, no traceback.

Two certificate sets from two ``make-certs.sh`` runs (two CAs), a certificate that
expired in 2020, a key that is not a key; a TLS ``LocalCluster`` in this process stands
for the scheduler that ``start-cluster.sh --tls-dir`` starts (``tests/cluster``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from distributed import LocalCluster
from distributed.security import Security

from dasknmf.cli import EXIT_USAGE, main
from dasknmf.jobs.config import TLSConfig
from dasknmf.jobs.tls import CertificateError, check_certificates
from tests.cluster.conftest import MAKE_CERTS
from tests.jobs.jobs_testing import base_job


def make_certs(out: Path) -> Path:
    done = subprocess.run(
        [str(MAKE_CERTS), "--out", str(out)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def two_cas(tmp_path_factory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: deploy/tls/make-certs.sh needs it")
    return make_certs(tmp_path_factory.mktemp("a")), make_certs(tmp_path_factory.mktemp("b"))


def expired_certificate(ca: Path, out: Path) -> Path:
    """A client certificate signed by ``ca``, valid for one day in January 2020."""
    out.mkdir()
    (out / "index.txt").write_text("")
    (out / "serial").write_text("01\n")
    (out / "ca.cnf").write_text(
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\n"
        "serial = serial\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n"
    )
    key, csr = out / "client-key.pem", out / "client.csr"
    run = {"cwd": out, "check": True, "capture_output": True, "timeout": 60}
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
        + ["-out", str(key)],
        **run,
    )
    subprocess.run(
        ["openssl", "req", "-new", "-key", str(key), "-subj", "/CN=old", "-out", str(csr)], **run
    )
    subprocess.run(
        ["openssl", "ca", "-batch", "-config", "ca.cnf", "-cert", str(ca / "ca.pem")]
        + ["-keyfile", str(ca / "ca-key.pem"), "-in", str(csr), "-out", "client.pem"]
        + ["-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-notext"],
        **run,
    )
    return out / "client.pem"


def tls(certs: Path, cert: Path | None = None, key: Path | None = None) -> TLSConfig:
    cert = cert or certs / "client.pem"
    key = key or cert.with_name(cert.stem + "-key.pem")
    return TLSConfig(ca_file=str(certs / "ca.pem"), cert=str(cert), key=str(key))


def test_matching_files_pass(two_cas):
    a, _ = two_cas
    check_certificates(tls(a))


def test_a_certificate_of_another_ca_names_both_files(two_cas):
    a, b = two_cas
    with pytest.raises(CertificateError) as exc:
        check_certificates(tls(a, cert=b / "client.pem"))
    message = str(exc.value)
    assert f"cluster.tls.cert (--tls-cert) '{b / 'client.pem'}' is not signed by" in message
    assert f"cluster.tls.ca_file (--tls-ca-file) '{a / 'ca.pem'}'" in message
    assert "different CAs" in message and "same deploy/tls/make-certs.sh run" in message


def test_a_key_of_another_certificate_or_not_a_key(two_cas, tmp_path):
    a, b = two_cas
    with pytest.raises(CertificateError, match=r"is not the key of cluster.tls.cert"):
        check_certificates(tls(a, key=b / "client-key.pem"))
    garbage = tmp_path / "client-key.pem"
    garbage.write_text("not a key\n")
    with pytest.raises(CertificateError, match=r"is not a readable, unencrypted PEM private key"):
        check_certificates(tls(a, key=garbage))
    with pytest.raises(CertificateError, match=r"'/no/such/key.pem' cannot be read: No such"):
        check_certificates(tls(a, key=Path("/no/such/key.pem")))


def test_an_expired_certificate_says_when_and_what_to_do(two_cas, tmp_path):
    if shutil.which("openssl") is None:  # pragma: no cover - two_cas skips first
        pytest.skip("needs openssl")
    a, _ = two_cas
    old = expired_certificate(a, tmp_path / "old")
    with pytest.raises(CertificateError) as exc:
        check_certificates(tls(a, cert=old))
    message = str(exc.value)
    assert f"'{old}' expired on 2020-01-02 00:00 UTC" in message
    assert "make-certs.sh --out DIR --force" in message


@pytest.fixture(scope="module")
def tls_scheduler(two_cas):
    """A TLS scheduler and worker with the certificates of the first CA."""
    a, _ = two_cas
    files = {
        f"tls_{role}_{part}": str(a / f"{role}{'-key' if part == 'key' else ''}.pem")
        for role in ("scheduler", "worker", "client")
        for part in ("cert", "key")
    }
    security = Security(tls_ca_file=str(a / "ca.pem"), require_encryption=True, **files)
    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tls://",
        security=security,
        dashboard_address=":0",
    ) as cluster:
        yield cluster.scheduler_address


def submit(job: Path, address: str, certs: Path, cert: Path | None = None) -> list[str]:
    t = tls(certs, cert=cert)
    return ["submit", str(job), "--address", address, "--quiet"] + [
        "--tls-ca-file",
        t.ca_file,
        "--tls-cert",
        t.cert,
        "--tls-key",
        str(t.key),
    ]


def test_submit_with_the_certificates_of_another_ca_exits_2(
    tls_scheduler, two_cas, write_job, matrix_file, tmp_path, capsys
):
    a, b = two_cas
    job = write_job(base_job(matrix_file, tmp_path / "out"))
    # All three files from another make-certs.sh run: the scheduler's certificate is
    # not signed by the CA given.
    assert main(submit(job, tls_scheduler, b)) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"dasknmf: error: the scheduler at {tls_scheduler} presents")
    assert f"not signed by the CA of cluster.tls.ca_file (--tls-ca-file) '{b / 'ca.pem'}'" in err
    assert "same deploy/tls/make-certs.sh run" in err and "Traceback" not in err
    # The CA of the scheduler, a certificate of the other: refused before connecting.
    assert main(submit(job, tls_scheduler, a, cert=b / "client.pem")) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"'{b / 'client.pem'}' is not signed by that CA" in err
    assert not (tmp_path / "out").exists()
