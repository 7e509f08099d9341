"""Exceptions raised by the library; only the ``main()`` functions turn them into exit codes."""

from __future__ import annotations


class PipelineError(Exception):
    """Base class of every error the pipeline raises on bad input or bad state."""


class ConfigError(PipelineError, ValueError):
    """A params file, a ``--set`` override or a config value is wrong."""


class DataError(PipelineError):
    """The image folder (or a downloaded archive) is missing, malformed or unreadable."""


class BadImageError(DataError):
    """A file with an image extension could not be decoded."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"cannot decode image {path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):
        # Rebuilt from (path, reason), not from the message: errors raised in Dask workers and
        # subprocesses are pickled on their way back.
        return (self.__class__, (self.path, self.reason))


class WeightsError(PipelineError):
    """Backbone weights are unknown, unavailable offline, or do not fit the backbone."""


class FeatureStoreError(PipelineError):
    """A feature store (HDF5) is missing, incomplete, inconsistent or incompatible."""


class ClusterError(PipelineError):
    """A Dask scheduler cannot be reached or started, or a parallel run stopped part-way."""
