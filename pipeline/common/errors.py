"""Exceptions raised by the library; only the ``main()`` functions turn them into exit codes."""

from __future__ import annotations

import errno


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
        # Pickled back from Dask workers: rebuild from (path, reason).
        return (self.__class__, (self.path, self.reason))


class WeightsError(PipelineError):
    """Backbone weights are unknown, unavailable offline, or do not fit the backbone."""


class FeatureStoreError(PipelineError):
    """A feature store (HDF5) is missing, incomplete, inconsistent or incompatible."""


class ClusterError(PipelineError):
    """A Dask scheduler cannot be reached or started, or a parallel run stopped part-way."""


#: What to do about an OSError, by errno.
_ADVICE = {
    errno.ENOSPC: "free some space (or choose another folder) and run the same command again",
    errno.EDQUOT: "free some space (or choose another folder) and run the same command again",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.EACCES: "check the permissions, or choose another folder",
    errno.EPERM: "check the permissions, or choose another folder",
    errno.EISDIR: "a folder is in the way of a file: move it, or choose another path",
    errno.ENOTDIR: "a file is in the way of a folder: move it, or choose another path",
    errno.ENAMETOOLONG: "choose a shorter name",
    errno.ENOENT: "check the path",
}


def describe_os_error(exc: OSError, *, advice: bool = True) -> str:
    """One line for an OSError: the path(s), the cause, and (``advice``) what to do."""
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    cause = exc.strerror or str(exc) or type(exc).__name__
    todo = _ADVICE.get(exc.errno or -1) if advice else None
    where = " -> ".join(paths) if paths else "a file"
    line = f"{where}: {cause}" + (f"; {todo}" if todo else "")
    return " ".join(line.split())  # one line whatever the cause's text holds
