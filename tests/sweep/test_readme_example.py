"""The README's "Choosing k" example runs as written and finds the planted rank."""

from __future__ import annotations

import re
import runpy
import warnings
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(heading: str) -> str:
    """The first ```python block after ``heading`` in the README."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_choosing_k_example_finds_the_planted_rank(tmp_path, monkeypatch, capsys):
    source = readme_block("### Choosing k")
    script = tmp_path / "example.py"
    script.write_text(source, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        namespace = runpy.run_path(str(script))
    assert namespace["sweep"].best_k_ == 6
    assert namespace["model"].components_.shape == (6, 1_000)
    assert (tmp_path / "k_selection.png").stat().st_size > 10_000
    assert capsys.readouterr().out.rstrip().endswith("6")
