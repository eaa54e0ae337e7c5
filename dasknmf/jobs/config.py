"""The job file of ``dasknmf run``: one YAML schema and its defaults, as frozen dataclasses.

A job file has up to seven sections; only ``input``, ``model.n_components`` and
``output.directory`` are required, every other key has the default written in the
dataclasses below (the model's defaults are :class:`dasknmf.NMF`'s). Every key is
documented in ``configs/README.md``.

.. code-block:: yaml

    version: 1                      # optional; the schema version of this file
    input:
      path: counts.mtx              # a store, a file to ingest, or example:term-document
      chunks: [10000, 5000]         # tile shape when a file is ingested
      holdout: 0.2                  # ratings: entries held out and scored (missing: ignore)
    model:
      n_components: 20
      solver: hals
      max_iter: 300
      random_state: 0
    cluster:
      type: local                   # threads | local | cuda | existing
      n_workers: 2
      memory_limit: 2GiB
    output:
      directory: runs/counts-k20
    checkpoint:
      every: 10                     # write a checkpoint every 10 iterations (dasknmf resume)
    report:
      top_features: 10

A list of ranks (``n_components: [4, 6, 8]``) or a ``sweep`` section makes the job a
rank sweep (:class:`dasknmf.RankSweep`, run by :mod:`dasknmf.jobs.sweep`):

.. code-block:: yaml

    model:
      n_components: [4, 6, 8, 10]
    sweep:
      replicates: 10                # random starts per rank
      holdout: 0.1                  # rows and columns held out (bi-cross-validation)
      consensus_k: null             # the consensus W, H written: best_k by default

The rule of each key (type, range, allowed values) is in :mod:`dasknmf.jobs.rules`,
the checks spanning several keys in :mod:`dasknmf.jobs.sections`, and what a path
names in :mod:`dasknmf.jobs.paths`. A file is read, overridden and validated into a
:class:`JobConfig` by :mod:`dasknmf.jobs.loading`.

Relative local paths (input, output, scheduler file, TLS files) are resolved against
the current directory when the file is loaded, as any command-line path would be, and
the resolved :class:`JobConfig` holds absolute paths only, so a job means the same
thing wherever it is run from afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from dasknmf.jobs.paths import input_kind
from dasknmf.jobs.rules import CLUSTER_KEYS

__all__ = [
    "CONFIG_VERSION",
    "CheckpointConfig",
    "ClusterConfig",
    "InputConfig",
    "JobConfig",
    "ModelConfig",
    "OutputConfig",
    "ReportConfig",
    "SweepConfig",
    "TLSConfig",
]

#: Version of the job-file schema (the optional top-level ``version`` key).
CONFIG_VERSION = 1


@dataclass(frozen=True)
class InputConfig:
    """``input``: the matrix to factorise.

    Attributes
    ----------
    path : str
        A dasknmf store (local directory or fsspec URL), a local file that
        :func:`dasknmf.ingest.ingest` imports (``.mtx``, ``.npz``, ``.npy``, triplet
        ``.csv``/``.tsv``/``.txt``/``.parquet`` ...; ingested into a store in the job's
        work area), or ``example:term-document`` (built in memory).
    chunks : (int, int) or None
        Tile shape for an ingested file or the example; a store keeps its own tiles.
    storage_options : dict
        fsspec options for a store URL.
    rows, cols : int or None
        Shape of the example matrix (``example:`` paths only; default
        :data:`dasknmf.jobs.paths.EXAMPLE_SHAPE`).
    holdout : float, str or None
        Entries scored by RMSE after the fit (needs ``model.missing: ignore``): a
        fraction in (0, 1) of a triplet file's or ``example:ratings``' entries, split
        off before the fit (by a hash of each entry's ids and ``seed``), or the path
        of a store of held-out entries of the input's shape.
    seed : int
        Seed of the hold-out split (a fractional ``holdout`` only).
    corpus : bool
        A file to ingest is a text corpus, one document per line (a directory that
        is not a store is one without it).
    options : dict
        Keyword arguments of the ingest function for the file's kind
        (:func:`dasknmf.ingest.ingest_function`): ``delimiter``,
        ``columns`` for triplets, ``layer`` for AnnData, ``min_df``, ``stop_words``
        for corpora..., ``keep_invalid`` for every kind.
    """

    path: str
    chunks: tuple[int, int] | None = None
    storage_options: dict[str, Any] = field(default_factory=dict, hash=False)
    rows: int | None = None
    cols: int | None = None
    holdout: float | str | None = None
    seed: int = 0
    corpus: bool = False
    options: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def kind(self) -> Literal["example", "file", "store"]:
        """What ``path`` names."""
        return input_kind(self.path)


@dataclass(frozen=True)
class ModelConfig:
    """``model``: the parameters of :class:`dasknmf.NMF` (same names, same defaults;
    ``loss`` is NMF's ``beta_loss``; ``init: null`` is NMF's choice, ``'nndsvda'``, or
    ``'random'`` with ``missing: ignore``; ``alpha_weighted`` and ``validation`` are
    NMF's ratings parameters, ``validation`` held out of the training entries).
    ``n_components`` is a tuple of ranks in a sweep job (``JobConfig.sweep``)."""

    n_components: int | tuple[int, ...]
    solver: str = "auto"
    loss: str | float = "frobenius"
    init: str | None = None
    max_iter: int = 200
    tol: float = 1e-4
    random_state: int | None = None
    check_every: int = 10
    alpha_W: float = 0.0
    alpha_H: float | str = "same"
    l1_ratio: float = 0.0
    alpha_weighted: float = 0.0
    validation: float | None = None
    persist: bool | str = "auto"
    factors: str = "auto"
    factor_store: str | None = None
    missing: str | None = None
    device: str = "cpu"

    def nmf_params(self) -> dict[str, Any]:
        """Keyword arguments of :class:`dasknmf.NMF` (``missing`` only when set)."""
        params = {f.name: getattr(self, f.name) for f in fields(self)}
        params["beta_loss"] = params.pop("loss")
        if params["missing"] is None:
            del params["missing"]
        return params


@dataclass(frozen=True)
class TLSConfig:
    """``cluster.tls``: files for :class:`distributed.security.Security`."""

    ca_file: str
    cert: str
    key: str | None = None


@dataclass(frozen=True)
class ClusterConfig:
    """``cluster``: where the fit runs.

    ``type: threads`` runs in this process (``threads``: thread count, all cores when
    null); ``type: local`` starts a ``distributed.LocalCluster`` for the job;
    ``type: cuda`` starts dask-cuda's ``LocalCUDACluster`` (one worker per GPU, or
    ``n_workers`` of them), for ``model.device: cuda``;
    ``type: existing`` connects to a running scheduler by ``address`` or
    ``scheduler_file`` (exactly one), optionally over ``tls``.
    """

    type: str = "threads"
    threads: int | None = None
    n_workers: int | None = None
    threads_per_worker: int | None = None
    memory_limit: str | int | None = "auto"
    processes: bool = True
    dashboard: bool = False
    address: str | None = None
    scheduler_file: str | None = None
    tls: TLSConfig | None = None


@dataclass(frozen=True)
class OutputConfig:
    """``output``: where the results go (written atomically, see
    :mod:`dasknmf.jobs.outputs`)."""

    directory: str
    overwrite: bool = False
    save_w: bool = True


@dataclass(frozen=True)
class CheckpointConfig:
    """``checkpoint``: write the fit's state every ``every`` iterations (0: off) to the
    job's work area, from which ``dasknmf resume`` continues a job that stopped (see
    :mod:`dasknmf.jobs.checkpoints`)."""

    every: int = 0


@dataclass(frozen=True)
class ReportConfig:
    """``report``: the convergence plot and the top features of each component (these
    need column ids stored with the input)."""

    plot: bool = True
    top_features: int = 10


@dataclass(frozen=True)
class SweepConfig:
    """``sweep``: the replicates of a rank sweep (:class:`dasknmf.RankSweep`'s
    parameters of the same meaning, same defaults) and the rank whose consensus the
    job writes (``consensus_k``; ``None``: the sweep's ``best_k_``)."""

    replicates: int = 10
    holdout: float = 0.2
    consensus_k: int | None = None
    density_threshold: float = 0.5
    local_neighborhood: float = 0.3


@dataclass(frozen=True)
class JobConfig:
    """A validated job: what :func:`dasknmf.jobs.runner.run_job` runs.

    Examples
    --------
    >>> from dasknmf.jobs.loading import parse_config
    >>> job = parse_config({"input": {"path": "example:term-document"},
    ...                     "model": {"n_components": 5}, "output": {"directory": "out"}})
    >>> job.model.solver, job.cluster.type, job.output.overwrite
    ('auto', 'threads', False)
    """

    input: InputConfig
    model: ModelConfig
    output: OutputConfig
    cluster: ClusterConfig = ClusterConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    report: ReportConfig = ReportConfig()
    sweep: SweepConfig | None = None
    version: int = CONFIG_VERSION
    source: str = field(default="<config>", compare=False)

    @property
    def ranks(self) -> tuple[int, ...]:
        """The ranks fitted: ``model.n_components`` as a tuple."""
        k = self.model.n_components
        return tuple(k) if isinstance(k, tuple) else (k,)

    @property
    def stacked_components(self) -> int:
        """Columns of the factors fitted together: ``k``, or a sweep's ``Σk`` times its
        replicates (what one task holds)."""
        replicates = self.sweep.replicates if self.sweep is not None else 1
        return sum(self.ranks) * replicates

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration as plain JSON-compatible data (no ``source``)."""
        data = asdict(self)
        # Keys that do not apply (another cluster type's, the example's shape for a
        # file) would only suggest settings that played no part.
        # An unset alternative (``address: null`` beside ``scheduler_file``) is left out
        # too: the record must read back as the job it is (``dasknmf resume``).
        cluster_keys = ("type", *CLUSTER_KEYS[self.cluster.type])
        data["cluster"] = {
            k: v
            for k, v in data["cluster"].items()
            if k in cluster_keys and not (v is None and k in CLUSTER_KEYS["existing"])
        }
        if self.cluster.tls is not None and self.cluster.tls.key is None:
            del data["cluster"]["tls"]["key"]  # in the certificate file
        if self.model.factor_store is None:
            del data["model"]["factor_store"]  # the job's work area (dasknmf.jobs.runner)
        if self.input.kind != "example":
            del data["input"]["rows"], data["input"]["cols"]
        if self.input.kind == "store":
            del data["input"]["chunks"]  # a store keeps its tiles
        if self.input.holdout is None:
            del data["input"]["holdout"]
        if not isinstance(self.input.holdout, float):
            del data["input"]["seed"]
        if self.input.kind != "file":
            del data["input"]["corpus"], data["input"]["options"]
        if self.sweep is None:
            del data["sweep"]  # a single fit: the record of jobs without a sweep
        ordered = {
            "version": self.version,
            **{name: data[name] for name in SECTIONS if name in data},
        }
        return _jsonable(ordered)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


#: The sections of a job file and the dataclass of each.
SECTIONS: dict[str, type] = {
    "input": InputConfig,
    "model": ModelConfig,
    "cluster": ClusterConfig,
    "output": OutputConfig,
    "checkpoint": CheckpointConfig,
    "report": ReportConfig,
    "sweep": SweepConfig,
}
