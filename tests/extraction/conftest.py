"""Fixtures of the extraction tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def forbid_backbone(monkeypatch):
    """A function that, once called, fails the test if a backbone is built (an up-to-date
    store, or a set of bad images, needs none)."""
    from pipeline.backbones import models  # torch: only for the tests that ask for this

    def build(*args, **kwargs):
        raise AssertionError("a backbone was built where none is needed")

    return lambda: monkeypatch.setattr(models, "build", build)
