"""``read_ids`` takes the spellings of an axis that users type."""

from __future__ import annotations

import numpy as np
import pytest

from dasknmf.errors import InvalidParameterError
from dasknmf.storage import read_ids, write_matrix


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "v.zarr"
    write_matrix(np.ones((3, 2)), path)
    return path


@pytest.mark.parametrize(
    ("axis", "size"),
    [(0, 3), ("rows", 3), ("row", 3), ("index", 3), ("Rows", 3)]
    + [(1, 2), ("columns", 2), ("column", 2), ("cols", 2), ("col", 2), ("COLS", 2)],
)
def test_every_spelling_of_an_axis_is_accepted(store, axis, size):
    np.testing.assert_array_equal(read_ids(store, axis), np.arange(size))


@pytest.mark.parametrize("axis", [2, -1, "c", True, 1.0, None])
def test_another_axis_is_refused_with_the_spellings(store, axis):
    with pytest.raises(InvalidParameterError) as caught:
        read_ids(store, axis)
    message = str(caught.value)
    assert "0 or 'rows'" in message and "'cols'" in message and repr(axis) in message
