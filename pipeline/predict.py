"""Classify new images with a trained head: the recorded backbone, then the head.

    python -m pipeline.predict IMAGE_OR_DIR ... [--model runs/head/model.pt] [--json]
                               [--weights FILE] [--params params.yaml] [--set extract.device=cpu]

With ``--model`` it runs from any folder, without a params file: everything it needs comes
from the checkpoint (and ``--weights FILE`` where the weights were a file that moved); a
params file, when there is one (or ``--params`` names one), gives only ``extract.device``,
``extract.batch_size`` and ``extract.workers``. Without ``--model`` it reads
``<train.out_dir>/model.pt`` of the params, placeholders filled in as ``train_head`` fills
them.

The head's ``model.pt`` records which features it was trained on (``features``: backbone,
weights, their sha-256, the transform, and for random-init weights the seed). Prediction
rebuilds exactly that backbone and preprocessing, checks that the available weights have the
recorded sha-256 (and refuses, naming the weights the head needs, when they do not), turns
each image into features as stage one did, and applies the head in the dtype it was trained
in. Cached and live features therefore give the same logits (a test checks it).

A directory is walked recursively with stage one's rules
(:func:`pipeline.sources.images.walk_images`: sorted, only the image extensions); a file named
on the command line is read whatever its extension. Images are decoded in ``extract.workers``
processes and run in batches of ``extract.batch_size`` on ``extract.device``. An image that
cannot be decoded is reported by name, the others are still predicted, and the exit code is 1.

Output, one line per image on stdout (the log and the progress go to stderr)::

    val/ants/10308379_1b6c72e180.jpg  ants  0.912   ants 0.912  bees 0.088

or with ``--json`` a list of ``{"path", "predicted", "probability", "probabilities",
"logits"}`` (``{"path", "error"}`` for an image that failed).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.common import cli, files
from pipeline.common.config import DEFAULT_PARAMS, Params, load_params
from pipeline.common.errors import ConfigError, DataError
from pipeline.inference.predict import format_lines, predict


def _params(args) -> Params:
    """The params file named by --params, else params.yaml when it is here, else (with
    --model) the code's defaults: a checkpoint needs no params file."""
    if args.params is not None or Path(DEFAULT_PARAMS).is_file():
        return load_params(args.params or DEFAULT_PARAMS, args.overrides)
    if args.model is None:
        raise ConfigError(
            f"no --model given and no params file {DEFAULT_PARAMS!r} here to find "
            "<train.out_dir>/model.pt from; pass --model path/to/model.pt (or --params FILE)"
        )
    return load_params(os.devnull, args.overrides)  # an empty file: every default


def _run(args) -> None:
    params = _params(args)
    model = args.model or params.model_path
    predictions = predict(
        model,
        args.inputs,
        weights=args.weights,
        device=params.extract.device,
        batch_size=params.extract.batch_size,
        workers=params.extract.workers,
    )
    if args.json:
        print(files.json_text([p.to_json() for p in predictions]), end="")
    else:
        print("\n".join(format_lines(predictions)))
    failed = [p.path for p in predictions if not p.ok]
    if failed:
        raise DataError(
            f"{len(failed)} of {len(predictions)} images could not be decoded: " + ", ".join(failed)
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser(
        "python -m pipeline.predict",
        "Classify images with a trained head and the backbone its features came from. Runs "
        "on extract.device in batches of extract.batch_size.",
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="images or folders")
    cli.add_model_argument(parser)
    parser.add_argument(
        "--weights",
        metavar="FILE",
        help="backbone state-dict file to use instead of the recorded one (must have the "
        "recorded sha256)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.set_defaults(params=None)  # tell "no --params" from an explicit params.yaml
    return cli.main(parser, argv, _run)


if __name__ == "__main__":
    sys.exit(main())
