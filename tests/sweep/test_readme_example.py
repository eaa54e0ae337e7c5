"""The README's "Choosing k" example runs as written and finds the planted rank."""

from __future__ import annotations

import re

import numpy as np
import pytest

import dasknmf
from dasknmf.datasets import planted_counts
from tests.helpers import readme_section, run_readme_block


@pytest.mark.slow
def test_the_choosing_k_example_finds_the_planted_rank(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace = run_readme_block("### Choosing k", tmp_path)
    assert namespace["sweep"].best_k_ == 6
    assert namespace["model"].components_.shape == (6, 1_000)
    assert (tmp_path / "k_selection.png").stat().st_size > 10_000
    assert capsys.readouterr().out.rstrip().endswith("6")


@pytest.mark.slow
def test_the_n_init_example_keeps_the_best_of_ten_starts(tmp_path, monkeypatch):
    """The section's second block (``NMF(n_init=10)``), run on the first block's ``X``."""
    blocks = re.findall(r"```python\n(.*?)```", readme_section("### Choosing k"), re.S)
    X, _, _ = planted_counts(2_000, 1_000, rank=6, seed=0)
    namespace = {"X": X, "dasknmf": dasknmf}
    exec(compile(blocks[1], "README.md (n_init)", "exec"), namespace)
    model = namespace["model"]
    assert model.init_errors_.shape == (10,) and model.components_.shape == (6, 1_000)
    assert model.reconstruction_err_ == np.min(model.init_errors_)
