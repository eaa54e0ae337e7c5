"""The job schema: defaults, resolution, overrides, and an error for each kind of mistake."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

import dasknmf
from dasknmf.datasets import term_document
from dasknmf.errors import InvalidParameterError
from dasknmf.jobs import config as cfg
from dasknmf.jobs.config import JobConfig, ModelConfig
from dasknmf.jobs.loading import load_config, parse_config
from dasknmf.jobs.rules import RULES
from dasknmf.jobs.validation import JobConfigError, JobConfigNotFoundError
from tests.jobs.jobs_testing import CONFIGS, base_job


def problems(excinfo) -> list[str]:
    return [str(p) for p in excinfo.value.problems]


# -- the schema ------------------------------------------------------------------------


def test_model_defaults_are_the_estimators():
    nmf = dasknmf.NMF().get_params()
    for f in dataclasses.fields(ModelConfig):
        if f.name == "n_components":
            continue
        name = "beta_loss" if f.name == "loss" else f.name
        assert f.default == nmf[name], f.name


def test_every_field_has_a_rule_and_every_rule_a_field():
    for name, cls in cfg.SECTIONS.items():
        assert set(RULES[name]) == {f.name for f in dataclasses.fields(cls)}, name
    assert set(RULES["cluster.tls"]) == {f.name for f in dataclasses.fields(cfg.TLSConfig)}


def test_every_key_is_documented_in_configs_readme():
    readme = (CONFIGS / "README.md").read_text()
    for section, rules in RULES.items():
        for key in rules:
            assert f"`{section}.{key}`" in readme, f"{section}.{key}"


def test_minimal_job_gets_the_defaults_and_absolute_paths(tmp_path, matrix_file, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job = parse_config(
        {
            "input": {"path": "data/V.npz"},
            "model": {"n_components": 4},
            "output": {"directory": "out"},
        }
    )
    assert job.input.path == str(matrix_file)
    assert job.input.kind == "file"
    assert job.output.directory == str(tmp_path / "out")
    assert job.model == ModelConfig(n_components=4)
    assert (job.cluster.type, job.output.overwrite, job.output.save_w) == ("threads", False, True)
    assert (job.checkpoint.every, job.report.plot, job.report.top_features) == (0, True, 10)


def test_resolved_config_parses_back_to_itself(tmp_path, matrix_file):
    job = parse_config(base_job(matrix_file, tmp_path / "out", loss=1.5, alpha_H=0.2))
    assert parse_config(job.to_dict()) == job
    # A store input too (what `dasknmf resume` reads back from a checkpoint).
    store = tmp_path / "V.zarr"
    dasknmf.write_matrix(np.eye(3), store)
    stored = {**base_job(store, tmp_path / "out"), "input": {"path": str(store)}}
    job = parse_config(stored)
    assert parse_config(job.to_dict()) == job


def test_input_and_output_may_be_written_as_strings(write_job, matrix_file, tmp_path):
    """``input: V.npz`` is ``input: {path: V.npz}``; ``output: out`` is
    ``output: {directory: out}`` (the first guess of a new user)."""
    short = load_config(
        write_job(f"input: {matrix_file}\nmodel: {{n_components: 2}}\noutput: out\n")
    )
    long = load_config(
        write_job(
            f"input:\n  path: {matrix_file}\nmodel: {{n_components: 2}}\n"
            "output:\n  directory: out\n"
        )
    )
    assert short == long
    # --set reaches into a section written short.
    job = load_config(
        write_job(f"input: {matrix_file}\nmodel: {{n_components: 2}}\noutput: out\n"),
        ["input.chunks=[10, 10]", "output.overwrite=true"],
    )
    assert (job.input.chunks, job.output.overwrite) == ((10, 10), True)
    # Another scalar is still an error naming the keys, on its line.
    with pytest.raises(JobConfigError) as excinfo:
        load_config(write_job("input: 5\nmodel: {n_components: 2}\noutput: out\n"))
    assert any(
        ":1: " in p and "'input' must be a mapping with keys path" in p and "or a string" in p
        for p in problems(excinfo)
    ), problems(excinfo)


def test_load_config_reads_yaml_with_yaml11_floats(write_job, matrix_file, tmp_path):
    text = (
        f"input:\n  path: {matrix_file}\nmodel:\n  n_components: 2\n  tol: 1e-6\n"
        "  alpha_W: 2.5e-1\n  loss: 1e0\noutput:\n  directory: out\n"
    )
    job = load_config(write_job(text))
    # PyYAML reads 1e-6 as a string (YAML 1.1); numeric keys accept it as the number.
    assert (job.model.tol, job.model.alpha_W, job.model.loss) == (1e-6, 0.25, 1.0)


def test_example_input_gets_its_default_shape(tmp_path):
    job = parse_config(base_job("example:term-document", tmp_path / "o"))
    assert (job.input.kind, job.input.rows, job.input.cols) == ("example", 5000, 2000)


def test_model_params_pass_missing_only_when_set():
    assert "missing" not in ModelConfig(n_components=2).nmf_params()
    params = ModelConfig(n_components=2, loss="kullback-leibler", missing="ignore").nmf_params()
    assert params["missing"] == "ignore"
    assert params["beta_loss"] == "kullback-leibler"
    assert "loss" not in params


# -- one error per kind of mistake -----------------------------------------------------


def _set(job: dict, dotted: str, value) -> dict:
    *parents, last = dotted.split(".")
    node = job
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return job


def _drop(job: dict, dotted: str) -> dict:
    *parents, last = dotted.split(".")
    node = job
    for part in parents:
        node = node[part]
    del node[last]
    return job


MISTAKES = [
    # (key path, value, text expected in the message) - wrong types
    ("model.n_components", "ten", "an int"),
    ("model.n_components", True, "an int"),
    ("model.max_iter", 2.5, "an int"),
    ("model.tol", "small", "a real number"),
    ("output.overwrite", "maybe", "true or false"),
    ("input.chunks", [10], "pair of positive ints"),
    ("cluster", ["threads"], "must be a mapping"),
    ("input.storage_options", "anon", "mapping of fsspec options"),
    # out of range
    ("model.n_components", 0, "[1, inf]"),
    ("model.max_iter", -1, "[0, inf]"),
    ("model.tol", -0.1, ">= 0.0"),
    ("model.l1_ratio", 1.5, "[0.0, 1.0]"),
    ("model.alpha_H", -1, "'same' or a real number >= 0.0"),
    ("model.alpha_weighted", -0.5, ">= 0.0"),
    ("model.validation", 0.6, "fraction in (0, 0.5)"),
    ("model.check_every", 0, "[1, inf]"),
    ("model.random_state", -3, "[0, inf]"),
    ("checkpoint.every", -1, "[0, inf]"),
    ("report.top_features", -5, "[0, inf]"),
    ("cluster.threads", 0, "[1, inf]"),
    # not one of the options
    ("model.solver", "newton", "'mu', 'hals', 'als', 'cd', 'auto'"),
    ("model.init", "svd", "'random', 'nndsvd', 'nndsvda', 'nndsvdar'"),
    ("model.loss", "kl", "'kullback-leibler'"),
    ("model.persist", "sometimes", "'auto', True, False"),
    ("model.missing", "drop", "None, 'ignore'"),
    ("cluster.type", "slurm", "'threads', 'local', 'cuda', 'existing'"),
    ("version", 2, "newer than this dasknmf reads"),
]


@pytest.mark.parametrize(("key", "value", "allowed"), MISTAKES)
def test_each_mistake_names_file_line_key_value_and_what_is_allowed(
    key, value, allowed, write_job, matrix_file, tmp_path
):
    path = write_job(_set(base_job(matrix_file, tmp_path / "out"), key, value))
    with pytest.raises(JobConfigError) as excinfo:
        load_config(path)
    assert excinfo.value.keys == [key]
    (line,) = problems(excinfo)
    assert re.match(rf"{re.escape(str(path))}:\d+: ", line), line
    assert key in line
    assert repr(value) in line
    assert allowed in line
    assert isinstance(excinfo.value, InvalidParameterError)
    assert isinstance(excinfo.value, dasknmf.DaskNMFError)


def test_error_points_at_the_line_of_the_key(write_job, matrix_file, tmp_path):
    text = (
        f"input:\n  path: {matrix_file}\nmodel:\n  n_components: 2\n\n\n  max_iter: -4\n"
        f"output:\n  directory: {tmp_path / 'out'}\n"
    )
    path = write_job(text)
    with pytest.raises(JobConfigError) as excinfo:
        load_config(path)
    assert problems(excinfo) == [
        f"{path}:7: The 'model.max_iter' parameter must be an int in [0, inf]; got -4."
    ]


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [("model.n_component", "model.n_components"), ("modle", "model"), ("output.dir", None)],
)
def test_unknown_keys_are_errors_with_the_closest_valid_key(
    key, suggestion, write_job, matrix_file, tmp_path
):
    path = write_job(_set(base_job(matrix_file, tmp_path / "out"), key, 1))
    with pytest.raises(JobConfigError) as excinfo:
        load_config(path)
    messages = [p.message for p in excinfo.value.problems if p.key == key]
    assert messages and f"unknown key {key!r}" in messages[0]
    if suggestion:
        assert f"did you mean {suggestion!r}?" in messages[0]


@pytest.mark.parametrize(
    ("drop", "key"),
    [
        ("model.n_components", "model.n_components"),
        ("input.path", "input.path"),
        ("output.directory", "output.directory"),
        ("output", "output"),
        ("input", "input"),
    ],
)
def test_missing_required_keys(drop, key, write_job, matrix_file, tmp_path):
    path = write_job(_drop(base_job(matrix_file, tmp_path / "out"), drop))
    with pytest.raises(JobConfigError) as excinfo:
        load_config(path)
    assert excinfo.value.keys == [key]
    assert f"missing required {'key' if '.' in key else 'section'} {key!r}" in str(excinfo.value)


def test_missing_input_path_is_checked_at_validation(write_job, tmp_path):
    path = write_job(base_job(tmp_path / "nowhere.mtx", tmp_path / "out"))
    with pytest.raises(JobConfigError, match=r"the input matrix file '.*nowhere.mtx' does not"):
        load_config(path)
    # ... but not when asked not to (a job checked on one machine, run on another).
    assert load_config(path, check_paths=False).input.kind == "file"


def test_all_problems_are_reported_together_in_file_order(write_job, matrix_file, tmp_path):
    job = base_job(matrix_file, tmp_path / "out", n_components=0, solver="x", tol=-1)
    job["cluster"] = {"type": "existing", "address": "tcp://h:8786", "scheduler_file": "s.json"}
    job["reprot"] = {}
    with pytest.raises(JobConfigError) as excinfo:
        load_config(write_job(job))
    assert excinfo.value.keys == [
        "model.n_components",
        "model.tol",
        "model.solver",
        "cluster.address",
        "reprot",
    ]
    text = str(excinfo.value)
    assert text.startswith(f"invalid job configuration {write_job(job)} (5 problems):\n")
    assert len(text.splitlines()) == 6
    lines = [int(p.where.rsplit(":", 1)[1]) for p in excinfo.value.problems]
    assert lines == sorted(lines)


def test_address_and_scheduler_file_together_names_both(tmp_path, matrix_file):
    job = base_job(matrix_file, tmp_path / "out")
    job["cluster"] = {"type": "existing", "address": "tcp://h:8786", "scheduler_file": "s.json"}
    with pytest.raises(JobConfigError) as excinfo:
        parse_config(job, "job.yaml")
    message = str(excinfo.value)
    assert "'cluster.address'" in message and "'cluster.scheduler_file'" in message
    assert "not both" in message


@pytest.mark.parametrize(
    ("cluster", "key", "text"),
    [
        ({"type": "existing"}, "cluster.type", "needs 'cluster.address'"),
        ({"type": "threads", "n_workers": 2}, "cluster.n_workers", "to cluster.type 'local'"),
        ({"type": "local", "address": "tcp://h:1"}, "cluster.address", "cluster.type 'existing'"),
        ({"type": "local", "memory_limit": "lots"}, "cluster.memory_limit", "'2GiB'"),
        ({"type": "local", "memory_limit": 0}, "cluster.memory_limit", "got 0"),
        (
            {"type": "existing", "address": "tcp://h:1", "tls": {"ca_file": "ca.pem"}},
            "cluster.tls.cert",
            "missing required key 'cluster.tls.cert'",
        ),
    ],
)
def test_cluster_combinations(cluster, key, text, tmp_path, matrix_file):
    job = base_job(matrix_file, tmp_path / "out")
    job["cluster"] = cluster
    with pytest.raises(JobConfigError) as excinfo:
        parse_config(job, "job.yaml", check_paths=False)
    assert key in excinfo.value.keys
    assert text in str(excinfo.value)


def test_tls_files_must_exist_and_need_a_tls_address(tmp_path, matrix_file):
    for name in ("ca.pem", "cert.pem"):
        (tmp_path / name).write_text("x")
    job = base_job(matrix_file, tmp_path / "out")
    tls = {"ca_file": str(tmp_path / "ca.pem"), "cert": str(tmp_path / "cert.pem")}
    job["cluster"] = {"type": "existing", "address": "tls://h:8786", "tls": tls}
    assert parse_config(job).cluster.tls == cfg.TLSConfig(tls["ca_file"], tls["cert"])

    job["cluster"]["address"] = "tcp://h:8786"
    job["cluster"]["tls"]["key"] = str(tmp_path / "missing-key.pem")
    with pytest.raises(JobConfigError) as excinfo:
        parse_config(job)
    assert sorted(excinfo.value.keys) == ["cluster.address", "cluster.tls.key"]


@pytest.mark.parametrize(
    ("model", "text"),
    [
        ({"loss": "kullback-leibler", "solver": "hals"}, "needs model.solver 'mu'"),
        ({"missing": "ignore", "solver": "cd"}, "needs model.solver 'als' or model.solver 'mu'"),
    ],
)
def test_model_combinations(model, text, tmp_path, matrix_file):
    with pytest.raises(JobConfigError, match=text) as excinfo:
        parse_config(base_job(matrix_file, tmp_path / "out", **model))
    assert excinfo.value.keys == ["model.solver"]


@pytest.mark.parametrize(
    ("model", "key", "text"),
    [
        ({"validation": 0.05}, "model.validation", "0.05 holds out .* needs model.missing"),
        (
            {"missing": "ignore", "solver": "mu", "alpha_weighted": 0.03},
            "model.alpha_weighted",
            "0.03 needs model.solver 'als' .* got model.solver 'mu'",
        ),
    ],
)
def test_ratings_parameters_need_a_ratings_model(model, key, text, tmp_path, matrix_file):
    with pytest.raises(JobConfigError, match=text) as excinfo:
        parse_config(base_job(matrix_file, tmp_path / "out", **model))
    assert excinfo.value.keys == [key]


def test_ratings_parameters_reach_the_estimator(tmp_path, matrix_file):
    job = parse_config(
        base_job(
            matrix_file, tmp_path / "out", missing="ignore", alpha_weighted=0.03, validation=0.05
        )
    )
    params = job.model.nmf_params()
    assert (params["alpha_weighted"], params["validation"]) == (0.03, 0.05)
    assert dasknmf.NMF(**params).get_params()["validation"] == 0.05


@pytest.mark.parametrize(
    ("inp", "key", "text"),
    [
        ({"path": "example:faces"}, "input.path", "unknown example"),
        ({"path": "example:term-document", "rows": 0}, "input.rows", "[1, inf]"),
        ({"path": "s3://bucket/v.mtx"}, "input.path", "local paths only"),
        ({"path": "s3://bucket/v.zarr", "chunks": [10, 10]}, "input.chunks", "keeps its own"),
        ({"path": "{file}", "rows": 10}, "input.rows", "only to example inputs"),
        ({"path": "{file}", "storage_options": {"anon": True}}, "input.storage_options", "URLs"),
        ({"path": "{file}", "holdout": 0.2}, "input.holdout", "splits triplet files"),
        ({"path": "{file}", "holdout": 1.5}, "input.holdout", "fraction in (0, 1)"),
        ({"path": "{file}", "holdout": "{file}"}, "input.holdout", "must be a store"),
        ({"path": "{file}", "holdout": "nowhere.zarr"}, "input.holdout", "does not exist"),
        ({"path": "example:ratings", "seed": 3}, "input.seed", "no fraction is given"),
        ({"path": "{file}", "options": {"min_df": 2}}, "input.options.min_df", "accepted:"),
        (
            {"path": "{file}", "options": {"chunks": [2, 2]}},
            "input.options.chunks",
            "input.chunks",
        ),
        ({"path": "example:ratings", "corpus": True}, "input.corpus", "files to ingest"),
    ],
)
def test_input_combinations(inp, key, text, tmp_path, matrix_file):
    job = base_job(matrix_file, tmp_path / "out", missing="ignore")
    job["input"] = {k: (str(matrix_file) if v == "{file}" else v) for k, v in inp.items()}
    with pytest.raises(JobConfigError, match=re.escape(text)) as excinfo:
        parse_config(job)
    assert excinfo.value.keys == [key]


def test_holdout_needs_a_missing_entry_model(tmp_path):
    job = base_job("example:ratings", tmp_path / "out")
    job["input"].update(holdout=0.2)
    with pytest.raises(JobConfigError, match=r"input\.holdout needs model\.missing: ignore"):
        parse_config(job)
    job["model"]["missing"] = "ignore"
    assert parse_config(job).input.holdout == 0.2


@pytest.mark.parametrize("directory", ["{data}", "{parent}", "s3://bucket/out"])
def test_output_must_be_local_and_apart_from_the_input(directory, tmp_path, matrix_file):
    place = {"{data}": matrix_file.parent, "{parent}": tmp_path}
    job = base_job(matrix_file, place.get(directory, directory))
    with pytest.raises(JobConfigError) as excinfo:
        parse_config(job)
    assert excinfo.value.keys == ["output.directory"]


def test_not_a_mapping_and_empty_files(write_job):
    with pytest.raises(JobConfigError, match="must be a mapping of sections"):
        load_config(write_job("- input\n- model\n"))
    with pytest.raises(JobConfigError) as excinfo:
        load_config(write_job(""))
    assert excinfo.value.keys == ["input", "model", "output"]


def test_yaml_syntax_error_names_line_and_column(write_job):
    path = write_job("model:\n  n_components: [3\n")
    with pytest.raises(JobConfigError, match=rf"{re.escape(str(path))}:\d+:\d+: not valid YAML"):
        load_config(path)


def test_duplicate_keys_are_errors(write_job, matrix_file, tmp_path):
    text = (
        f"input: {{path: {matrix_file}}}\nmodel:\n  n_components: 2\n  n_components: 3\n"
        f"output: {{directory: {tmp_path / 'o'}}}\n"
    )
    path = write_job(text)
    with pytest.raises(JobConfigError) as excinfo:
        load_config(path)
    assert problems(excinfo) == [
        f"{path}:4: duplicate key 'model.n_components': YAML would keep only the last one; "
        "give it once."
    ]


def test_missing_job_file():
    with pytest.raises(JobConfigNotFoundError, match="does not exist"):
        load_config("/no/such/job.yaml")
    assert issubclass(JobConfigNotFoundError, FileNotFoundError)


# -- overrides -------------------------------------------------------------------------


def test_overrides_are_parsed_as_yaml_and_create_sections(write_job, matrix_file, tmp_path):
    path = write_job(base_job(matrix_file, tmp_path / "out"))
    job = load_config(
        path,
        [
            "model.max_iter=30",
            "model.random_state=null",
            "output.overwrite=true",
            "input.chunks=[45, 20]",
            "checkpoint.every=5",
            "model.alpha_H=same",
            "model.tol=1e-3",
        ],
    )
    assert (job.model.max_iter, job.model.random_state, job.model.tol) == (30, None, 1e-3)
    assert job.output.overwrite is True
    assert job.input.chunks == (45, 20)
    assert job.checkpoint.every == 5


def test_later_overrides_win_and_replace_whole_sections(tmp_path, matrix_file):
    job = base_job(matrix_file, tmp_path / "out")
    overrides = ["model.max_iter=3", "model.max_iter=4", "cluster={type: local, n_workers: 2}"]
    resolved = parse_config(job, "job.yaml", overrides)
    assert resolved.model.max_iter == 4
    assert (resolved.cluster.type, resolved.cluster.n_workers) == ("local", 2)


@pytest.mark.parametrize(
    ("item", "key", "text"),
    [
        ("model.n_componets=3", "model.n_componets", "did you mean 'model.n_components'?"),
        ("modle.max_iter=3", "modle", "did you mean 'model'?"),
        ("model.max_iter=-2", "model.max_iter", "got -2"),
        ("model.max_iter", "model.max_iter", "expected --set KEY.PATH=VALUE"),
        ("model..tol=1", "model..tol", "expected --set KEY.PATH=VALUE"),
        ("model.max_iter=[1", "model.max_iter", "is not valid YAML"),
        ("model.n_components.k=3", "model.n_components.k", "not a mapping"),
    ],
)
def test_bad_overrides_are_validation_errors_naming_them(
    item, key, text, write_job, matrix_file, tmp_path
):
    path = write_job(base_job(matrix_file, tmp_path / "out"))
    with pytest.raises(JobConfigError) as excinfo:
        load_config(path, [item])
    (problem,) = excinfo.value.problems
    assert problem.key == key
    assert problem.where == f"--set {item}"
    assert text in str(problem)


def test_override_fixes_a_mistake_of_the_file(write_job, matrix_file, tmp_path):
    path = write_job(base_job(matrix_file, tmp_path / "out", n_components=0))
    with pytest.raises(JobConfigError):
        load_config(path)
    assert load_config(path, ["model.n_components=2"]).model.n_components == 2


# -- shipped configs -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["example.yaml", "cluster.yaml", "ratings.yaml"])
def test_shipped_configs_are_valid_as_they_are(name):
    job = load_config(CONFIGS / name)
    assert isinstance(job, JobConfig)


def test_laptop_config_is_valid_where_its_input_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dasknmf.write_matrix(term_document(50, 20), "data/term_document.zarr")
    job = load_config(CONFIGS / "laptop.yaml")
    assert (job.cluster.type, job.cluster.n_workers, job.model.persist) == ("local", 2, False)
    assert Path(job.input.path) == tmp_path / "data" / "term_document.zarr"
