"""Stage two for one params file: the features, one head trained on them, its outputs."""

from __future__ import annotations

import logging

from pipeline.common.config import Params
from pipeline.store.hdf5 import RANDOM_INIT_WARNING
from pipeline.training.data import features_for, load_data
from pipeline.training.loop import TrainResult, fit
from pipeline.training.outputs import save

log = logging.getLogger("pipeline")


def train_head(params: Params) -> TrainResult:
    """Train ``params.train`` on its feature store; save into its ``out_dir``."""
    cfg = params.train
    data = load_data(features_for(params))
    if data.meta.random_init:
        log.warning("%s", RANDOM_INIT_WARNING)
    log.info(
        "%s head on %s (%d train / %d val, %d features, classes %s)",
        cfg.head,
        data.path,
        len(data.train),
        len(data.val),
        data.meta.feature_dim,
        ", ".join(data.class_names),
    )
    result = fit(cfg, data)
    out = save(result, params.out_dir)
    m = result.metrics
    log.info(
        "best val acc %.4f (epoch %d), last %.4f; %d parameters; %.2f s (%.4f s/epoch); wrote %s",
        m["best"]["val_acc"],
        m["best"]["epoch"],
        m["last"]["val_acc"],
        m["n_params"],
        result.timing["wall_time_s"],
        result.timing["train_seconds_per_epoch"],
        out,
    )
    return result
