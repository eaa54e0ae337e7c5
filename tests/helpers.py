"""Deterministic test matrices and factors shared by the engine tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp


def make_matrix(
    m: int, n: int, *, density: float = 0.2, seed: int = 0, kind: str = "sparse", dtype=np.float64
):
    """A deterministic non-negative test matrix (CSR for kind='sparse', else ndarray)."""
    rng = np.random.default_rng(seed)
    X = sp.random(m, n, density=density, format="csr", random_state=rng, dtype=np.float64)
    X.data = np.round(X.data * 5, 2) + 0.01
    X = X.astype(dtype)
    return X if kind == "sparse" else X.toarray()


def make_factors(m: int, n: int, k: int, *, seed: int = 1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.random((m, k)).astype(dtype) + 0.1, rng.random((k, n)).astype(dtype) + 0.1


#: Tilings of a 37 × 23 matrix: one tile, many, ragged last tiles, single-row tiles.
CHUNKINGS = [(37, 23), (10, 7), (13, 23), (1, 23), (37, 5)]


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_section(heading: str) -> str:
    """The README's text from ``heading`` to the next heading of the same level."""
    text = README.read_text(encoding="utf-8")
    start = text.index(heading)
    level = heading.split(" ", 1)[0]
    end = text.find(f"\n{level} ", start + 1)
    return text[start : end if end != -1 else len(text)]


def run_readme_block(heading: str, directory: Path) -> dict:
    """Run the first ```python block of the README section ``heading`` as a script in
    ``directory`` (warnings silenced); its global names."""
    import re
    import runpy
    import warnings

    source = re.search(r"```python\n(.*?)```", readme_section(heading), re.S).group(1)
    script = directory / "readme_example.py"
    script.write_text(source, encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return runpy.run_path(str(script))
