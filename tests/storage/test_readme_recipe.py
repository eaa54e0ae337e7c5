"""The README's "My matrix does not fit in memory" recipe runs as written."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.sparse as sp

import dasknmf
from dasknmf.errors import InvalidInputError
from tests.helpers import readme_section, run_readme_block

HEADING = "### My matrix does not fit in memory"


def section() -> str:
    return readme_section(HEADING)


@pytest.mark.slow  # ≈ 10 s on 2 shared cores: a 100,000 × 10,000 store, 20 passes
def test_the_recipe_writes_block_by_block_and_fits_out_of_core(tmp_path, monkeypatch, capsys):
    source = re.search(r"```python\n(.*?)```", section(), re.S).group(1)
    assert "chunks" not in source  # the example uses the automatic tile shape
    monkeypatch.chdir(tmp_path)
    namespace = run_readme_block(HEADING, tmp_path)
    info = dasknmf.matrix_info(tmp_path / "big.zarr")
    assert info.shape == (100_000, 10_000) and info.tile_shape[1] == 10_000
    model, W = namespace["model"], namespace["W"]
    assert W.shape == (100_000, 10) and not model.persisted_
    assert 0 < model.reconstruction_err_ < np.sqrt(info.nnz) * 10
    assert "(100000, 10)" in capsys.readouterr().out


def test_the_error_the_recipe_quotes_is_the_one_raised(tmp_path):
    quoted = re.search(r"\(`(row block 7 .*?) …`\)", section(), re.S).group(1)
    blocks = (sp.csr_matrix((25_000, 9_999 if i == 7 else 10_000)) for i in range(8))
    with pytest.raises(InvalidInputError) as caught:
        dasknmf.write_matrix(blocks, tmp_path / "x.zarr", shape=(200_000, 10_000))
    assert " ".join(quoted.split()) in str(caught.value)
