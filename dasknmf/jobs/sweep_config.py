"""What a rank-sweep job may say: ``model.n_components`` as a list of ranks, and the
checks that tie the ``sweep`` section to the ``model`` and ``input`` sections.

The ``sweep`` keys' own rules are in :data:`dasknmf.jobs.rules.RULES` with every
other key's; this module holds the rule of ``model.n_components`` (an int, or a list
of distinct ints in a sweep) and :func:`check_sweep`, which refuses what
:class:`dasknmf.RankSweep` cannot do, naming the key, before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dasknmf.jobs.validation import MISSING, Checker, show

__all__ = ["SWEEP_INITS", "check_sweep", "n_components"]

#: Initialisations a sweep takes: its replicates differ only by their seed, so the
#: deterministic ``nndsvd``/``nndsvda`` would give identical replicates.
SWEEP_INITS = ("random", "nndsvdar")


def n_components(c: Checker, s: Mapping[str, Any], key: str) -> Any:
    """An int >= 1 (one rank), or a non-empty list of distinct ints >= 1 (a rank sweep,
    returned as a sorted tuple)."""
    value = s["n_components"]
    if not isinstance(value, list):
        return c.integer(s, key, low=1)
    ranks = [v for v in value if isinstance(v, int) and not isinstance(v, bool) and v >= 1]
    if not value or len(ranks) != len(value):
        c.error(
            key,
            f"The {key!r} parameter must be an int >= 1, or a non-empty list of them (a "
            f"rank sweep); got {show(value)}.",
        )
        return MISSING
    if len(set(ranks)) != len(ranks):
        twice = sorted({k for k in ranks if ranks.count(k) > 1})
        c.error(key, f"The {key!r} parameter lists the rank(s) {twice} twice; got {value!r}.")
        return MISSING
    return tuple(sorted(ranks))


def check_sweep(
    inp: Mapping[str, Any],
    model: Mapping[str, Any],
    sweep: Mapping[str, Any],
    shape: tuple[int, int] | None,
    c: Checker,
) -> None:
    """The checks of a sweep job: ``sweep.consensus_k`` is one of the ranks; the model
    keys a sweep cannot honour are unset; every rank fits the block left after the
    held-out rows and columns, when the input's ``shape`` is known."""
    ranks = model.get("n_components", MISSING)
    if ranks is MISSING:
        return
    ranks = ranks if isinstance(ranks, tuple) else (ranks,)
    chosen = sweep.get("consensus_k")
    if chosen not in (None, MISSING) and chosen not in ranks:
        c.error(
            "sweep.consensus_k",
            f"sweep.consensus_k {chosen} is not one of the ranks swept, model.n_components "
            f"= {list(ranks)}; choose one of them, or null for the suggested k.",
        )
    init = model.get("init")
    if init not in (None, MISSING, *SWEEP_INITS):
        c.error(
            "model.init",
            f"model.init {init!r} is deterministic: every replicate of a sweep would be the "
            f"same fit; a sweep takes {' or '.join(map(repr, SWEEP_INITS))} (null: 'random').",
        )
    refused = {
        "model.alpha_weighted": (model.get("alpha_weighted", 0) not in (0, 0.0, MISSING)),
        "model.validation": model.get("validation") not in (None, MISSING),
        "model.device": model.get("device", "cpu") not in ("cpu", MISSING),
        "input.holdout": inp.get("holdout", MISSING) is not MISSING,
    }
    why = {
        "model.alpha_weighted": "a sweep's replicates take alpha_W, alpha_H and l1_ratio",
        "model.validation": "a sweep holds out its own entries: sweep.holdout",
        "model.device": "a sweep runs on the CPU",
        "input.holdout": "a sweep holds out its own rows and columns (or entries, with "
        "missing: ignore): sweep.holdout",
    }
    for key, bad in refused.items():
        if bad:
            c.error(key, f"{key!r} does not apply to a rank sweep ({why[key]}); remove it.")
    holdout = sweep.get("holdout", 0.2)
    if shape is None or holdout is MISSING:
        return
    m, n = shape
    if holdout > 0 and model.get("missing") != "ignore":
        m, n = m - max(1, round(holdout * m)), n - max(1, round(holdout * n))
    if max(ranks) > min(m, n):
        block = (
            f"the {m} x {n} block fitted after sweep.holdout {holdout}"
            if ((m, n) != tuple(shape))
            else f"the input of shape {tuple(shape)}"
        )
        c.error(
            "model.n_components",
            f"The 'model.n_components' parameter asks for k = {max(ranks)}, above "
            f"min(m, n) = {min(m, n)} of {block}; choose smaller ranks"
            + (" or a smaller sweep.holdout." if (m, n) != tuple(shape) else "."),
        )
