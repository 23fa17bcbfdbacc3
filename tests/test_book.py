"""The glue helper the notebooks use to put computed numbers into the prose."""

from __future__ import annotations

import numpy as np
import torch

from llmzero.book import _plain_number


def test_numpy_and_torch_scalars_become_python_numbers():
    assert _plain_number(np.float64(0.25)) == 0.25
    assert type(_plain_number(np.float64(0.25))) is float
    assert type(_plain_number(np.int64(3))) is int
    assert type(_plain_number(torch.tensor(1.5))) is float
    assert repr(_plain_number(np.float32(0.5))) == "0.5"


def test_arrays_strings_and_python_numbers_are_left_alone():
    array = np.arange(3)
    assert _plain_number(array) is array
    assert _plain_number("text") == "text"
    assert _plain_number(7) == 7
