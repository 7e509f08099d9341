"""The paper's QC and QQ data sets as feature-store sources (no backbone).

The fingerprint covers the settings and the pretrained file's expected SHA-256, not the
generated arrays, so an up-to-date store is recognised without computing them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.config import QCConfig, QQConfig
from pipeline.common.errors import DataError
from pipeline.common.files import atomic_path, json_sha256
from pipeline.sources import download, photonic_data
from pipeline.sources.base import Batch, Encoder, Listing, Provenance

log = logging.getLogger("pipeline")

#: Bumped when the generated features for the same settings change.
QC_PROTOCOL = 1
QQ_PROTOCOL = 1
QC_FILE, QQ_FILE = "trained_params.npy", "circuit_A.npy"
QC_TRANSFORM = (
    "QC (Mari et al. 2020, q2c_transfer_learning.ipynb): "
    "D(alpha_j + delta) (x) D(beta_j + eps)|0,0> with alpha = 1.4 [1,-1,1,-1,i,-i,i], "
    "beta = 1.4 [1,1,-1,-1,i,i,-i], complex noise N(0, 0.6) "
    "from numpy RandomState(qc.seed); A' = the first qc.layers of Killoran et al.'s 25 tetromino "
    "layers (BS, R, S, S, BS, R, D, D, K, K; clip 1) in truncated Fock space at qc.cutoff; "
    "features |ket[:4, :4]| / ||ket[:4, :4]||, 16 amplitude magnitudes"
)
QQ_TRANSFORM = (
    "QQ (Mari et al. 2020, q2q_transfer_learning.ipynb): R(r2) S(sq, 0) R(r1) D(1 - label, 0)"
    "|label> from numpy RandomState(qq.seed), batches of 8; circuit A = R(r1) R(r2) D(clip(d), 0) "
    "R(r3) V(clip(kappa)) (the notebook's squeezing never acted) in truncated Fock space at "
    "qq.cutoff; features: A's output kets, complex128, unnormalised"
)


def fetch_pretrained(file: str | Path, url: str, name: str) -> np.ndarray:
    """The checked pretrained array ``file``, downloaded from ``url`` first when it is missing."""
    file = Path(file)
    if name not in photonic_data.PRETRAINED:
        raise DataError(
            f"unknown pretrained file {name!r}; expected one of {sorted(photonic_data.PRETRAINED)}"
        )
    if not file.exists():
        expected = photonic_data.PRETRAINED[name].sha256
        log.info("pretrained file %s is missing: downloading %s", file, url)
        with atomic_path(file, suffix=".download") as tmp:
            try:
                got = download.download(url, tmp)
            except DataError as exc:  # its advice is about image archives: say what fits here
                raise DataError(
                    f"pretrained file {file} is missing and cannot be downloaded from {url} "
                    f"({exc.__cause__ or exc}); put the paper's {name} (its pre_trained/ "
                    "folder) there, or point the block's pretrained at a copy"
                ) from exc
            if got != expected:
                raise DataError(
                    f"download of {url} for {file} ({name}): expected sha256 {expected}; "
                    f"got {got}; nothing was written"
                )
    return photonic_data.load_pretrained_file(file, name)


def _rows(labels: dict[str, np.ndarray]) -> dict[str, list[str]]:
    return {split: [f"{split}/{i}" for i in range(len(y))] for split, y in labels.items()}


def _batch(data: dict[str, photonic_data.PhotonicSplit], split: str, rows: Sequence[str]) -> Batch:
    index = [int(row.rpartition("/")[2]) for row in rows]
    return Batch(list(range(len(rows))), data[split].features[index], [])


class _PhotonicSource:
    """What the QC and QQ sources share; ``settings_keys``: the keys the features depend on."""

    kind: str
    protocol: int
    settings_keys: tuple[str, ...]
    needs_backbone = False
    provenance: Provenance  # the pretrained file, as the store records it
    data: dict[str, photonic_data.PhotonicSplit]  # split -> the generated rows (computed once)

    def __init__(self, cfg: QCConfig | QQConfig):
        self.cfg = cfg

    def settings(self) -> dict[str, Any]:
        keep = self.settings_keys
        values = {k: v for k, v in asdict(self.cfg).items() if k in keep}
        return {"protocol": self.protocol, **values}

    def fingerprint(self, listing: Listing) -> str:
        return json_sha256({self.kind: self.settings(), "sha256": self.provenance.weights_sha256})

    def location(self, row: str) -> str:
        return f"{self.kind.upper()} state {row}"

    def iterate(
        self,
        split: str,
        rows: Sequence[str],
        encoder: Encoder | None,
        *,
        batch_size: int,
        workers: int,
    ) -> Iterator[Batch]:
        yield _batch(self.data, split, rows)


class QCSource(_PhotonicSource):
    """The QC store's rows (``<split>/<i>``), features (16 magnitudes) and metadata."""

    kind = "qc"
    protocol = QC_PROTOCOL
    settings_keys = ("layers", "cutoff", "seed", "n_train_batches", "n_val_batches")
    cfg: QCConfig

    @property
    def provenance(self) -> Provenance:
        spec = photonic_data.PRETRAINED[QC_FILE]
        return Provenance(f"cv-tetromino-{self.cfg.layers}of25", QC_FILE, spec.sha256, QC_TRANSFORM)

    @cached_property
    def data(self) -> dict[str, photonic_data.PhotonicSplit]:
        params = fetch_pretrained(self.cfg.pretrained, self.cfg.url, QC_FILE)
        return photonic_data.qc_dataset(
            params,
            n_layers=self.cfg.layers,
            cutoff=self.cfg.cutoff,
            n_train_batches=self.cfg.n_train_batches,
            n_val_batches=self.cfg.n_val_batches,
            seed=self.cfg.seed,
            min_norm=self.cfg.min_norm,
        )

    def list(self) -> Listing:
        n = len(photonic_data.QC_CLASSES)
        counts = {"train": self.cfg.n_train_batches, "val": self.cfg.n_val_batches}
        labels = {s: np.tile(np.arange(n, dtype=np.int64), b) for s, b in counts.items()}
        return Listing(photonic_data.QC_CLASSES, _rows(labels), labels)

    def metadata(self) -> dict[str, Any]:
        return {
            "qc": self.settings(),
            "rng": "numpy.random.RandomState (legacy MT19937), normal()",
            "paths": "<split>/<row>: one noisy state of each class per batch of 7, in order",
        }


class QQSource(_PhotonicSource):
    """The QQ store's rows (``<split>/<i>``), features (complex kets) and metadata."""

    kind = "qq"
    protocol = QQ_PROTOCOL
    settings_keys = ("cutoff", "seed", "n_train_batches", "n_val_batches")
    cfg: QQConfig

    @property
    def provenance(self) -> Provenance:
        spec = photonic_data.PRETRAINED[QQ_FILE]
        return Provenance("cv-circuit-A", QQ_FILE, spec.sha256, QQ_TRANSFORM)

    @cached_property
    def data(self) -> dict[str, photonic_data.PhotonicSplit]:
        circuit_a = fetch_pretrained(self.cfg.pretrained, self.cfg.url, QQ_FILE)
        return photonic_data.qq_dataset(
            circuit_a,
            cutoff=self.cfg.cutoff,
            n_train_batches=self.cfg.n_train_batches,
            n_val_batches=self.cfg.n_val_batches,
            seed=self.cfg.seed,
        )

    def list(self) -> Listing:
        draws = photonic_data.qq_draws(
            self.cfg.n_train_batches, self.cfg.n_val_batches, seed=self.cfg.seed
        )
        labels = {split: d.labels for split, d in draws.items()}
        return Listing(photonic_data.QQ_CLASSES, _rows(labels), labels)

    def metadata(self) -> dict[str, Any]:
        return {
            "qq": self.settings(),
            "rng": "numpy.random.RandomState (legacy MT19937): randint, uniform",
            "paths": "<split>/<row>: the batches of 8 as drawn, in order",
            "features": "circuit A's output kets <n|psi>, n < cutoff, complex128, unnormalised",
        }
