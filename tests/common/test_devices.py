"""torch_threads: a scoped thread count."""

from __future__ import annotations

import pytest
import torch

from pipeline.common.devices import torch_threads


def test_torch_threads_is_scoped():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads: expected an integer >= 1 or None; got 0"):
        with torch_threads(0):
            pass
