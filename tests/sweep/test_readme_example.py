"""The README's "Choosing k" example runs as written and finds the planted rank."""

from __future__ import annotations

import pytest

from tests.helpers import run_readme_block


@pytest.mark.slow
def test_the_choosing_k_example_finds_the_planted_rank(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace = run_readme_block("### Choosing k", tmp_path)
    assert namespace["sweep"].best_k_ == 6
    assert namespace["model"].components_.shape == (6, 1_000)
    assert (tmp_path / "k_selection.png").stat().st_size > 10_000
    assert capsys.readouterr().out.rstrip().endswith("6")
