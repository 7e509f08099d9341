"""Classify new images with a trained head and the backbone recorded with it.

    python -m pipeline.predict IMAGE_OR_DIR ... [--model runs/head/model.pt] [--json]
                               [--weights FILE] [--params params.yaml] [--set extract.device=cpu]

Prints one line per image, or a JSON list; see docs/prediction.md.
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
    """The params of --params, else params.yaml if here, else (with --model) the defaults."""
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
