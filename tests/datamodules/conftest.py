"""Fixtures shared by the data tests."""

from __future__ import annotations

import numpy as np
import pytest
from litlab.datamodules.synthetic.autism import draw_autism_faces


@pytest.fixture(scope="module")
def faces() -> tuple[np.ndarray, np.ndarray]:
    """24 drawn RGB faces at 128 px and their true masks (0 background, 1 face, 2 hair)."""
    return draw_autism_faces(np.arange(24) % 2, seed=11, size=128)
