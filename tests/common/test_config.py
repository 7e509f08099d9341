from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from pipeline.common.config import (
    ExtractConfig,
    Params,
    SpiralConfig,
    TrainConfig,
    load_params,
    parse_assignment,
    to_dict,
)
from pipeline.common.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_params_yaml_lists_every_key_of_every_block():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for block in dataclasses.fields(Params):
        keys = [f.name for f in dataclasses.fields(getattr(Params(), block.name))]
        assert block.name in raw, f"params.yaml lacks block {block.name!r}"
        assert sorted(raw[block.name]) == sorted(keys), block.name


def test_the_code_defaults_are_the_paper_s():
    """The defaults in the code, not the repository's params.yaml, which a user may edit
    (e.g. extract.weights: none, offline)."""
    params = Params()
    train = params.train
    assert train.lr == pytest.approx(4e-4) and train.gamma == pytest.approx(0.1)
    assert (train.batch_size, train.epochs, train.step_size, train.seed) == (4, 30, 10, 42)
    assert (train.n_qubits, train.q_depth, train.q_delta) == (4, 6, 0.01)
    assert (train.head, train.optimizer, train.checkpoint) == ("quantum", "adam", "best")
    assert (params.extract.backbone, params.extract.weights) == ("resnet18", "IMAGENET1K_V1")
    assert params.data.splits == ("train", "val")
    assert params.features_path == params.extract.out == "features/hymenoptera-resnet18.h5"


def test_the_repository_params_load_whatever_their_values():
    params = load_params(REPO / "params.yaml")  # a user's edits are theirs: only that it loads
    assert isinstance(params.train, TrainConfig)


def test_overrides_are_parsed_as_yaml_and_applied_in_order(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("train:\n  epochs: 3\n")
    params = load_params(
        p,
        [
            "train.epochs=5",
            "train.lr=1e-3",
            "train.backend=default.qubit",
            "data.splits=[train, test]",
            "train.shots=null",
            "train.epochs=7",
        ],
    )
    assert params.train.epochs == 7
    assert params.train.lr == pytest.approx(1e-3)
    assert params.train.backend == "default.qubit"
    assert params.data.splits == ("train", "test")
    assert params.train.shots is None
    assert params.extract == ExtractConfig()  # missing blocks take defaults


def test_yaml11_exponent_strings_are_accepted_for_floats(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("train:\n  lr: 4e-4\n  gamma: 1\n")  # PyYAML reads 4e-4 as a string
    params = load_params(p)
    assert params.train.lr == pytest.approx(4e-4)
    assert isinstance(params.train.gamma, float)


def test_unknown_key_names_it_and_lists_the_valid_ones(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'train.epoch'.*valid keys.*epochs"):
        load_params(p)
    with pytest.raises(ConfigError, match=r"unknown key 'extract.bakbone'.*backbone"):
        load_params(_empty(tmp_path), ["extract.bakbone=x"])


def _empty(tmp_path: Path) -> Path:
    p = tmp_path / "empty.yaml"
    p.write_text("")
    return p


def test_unknown_section_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown section 'trian'.*data, extract, train"):
        load_params(_empty(tmp_path), ["trian.epochs=3"])


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("train.epochs=three", r"train.epochs: expected int; got 'three'"),
        ("train.epochs=2.5", r"train.epochs: expected int; got 2.5"),
        ("train.epochs=true", r"train.epochs: expected int; got True"),
        ("train.head=quantumm", r"train.head: expected one of 'quantum', 'classical', 'linear'"),
        ("train.lr=fast", r"train.lr: expected float"),
        ("data.splits=train", r"data.splits: expected a list of str"),
        ("train.shots=0", r"train.shots: expected null or an integer >= 1"),
        ("train.epochs=0", r"train.epochs: expected an integer >= 1"),
        ("extract.on_bad_image=ignore", r"expected one of 'error', 'skip'"),
        ("data.sha256=abc", r"data.sha256: expected null or 64 hexadecimal digits"),
        ("data.splits=[val]", r"data.splits: expected a list that includes 'train'"),
    ],
)
def test_wrong_values_name_the_key_and_what_was_expected(tmp_path, override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_params(_empty(tmp_path), [override])


@pytest.mark.parametrize("text", ["train.epochs", "epochs=3", "a.b.c=1", ".x=1"])
def test_malformed_overrides(text):
    with pytest.raises(ConfigError, match=r"--set: expected section\.key=value"):
        parse_assignment(text)


@pytest.mark.parametrize("raw", ["4e-4", "0.001", "null", "quantum", "[train, val]", "true", "3"])
def test_grid_items_are_parsed_as_set_values(raw):
    """One parser: each --grid item is what the same text after --set is."""
    _, _, one = parse_assignment(f"train.x={raw}")
    _, _, many = parse_assignment(f"train.x={raw},{raw}", option="--grid", many=True)
    assert many == [one, one]


def test_malformed_grid_names_the_option():
    with pytest.raises(ConfigError, match=r"--grid: expected section\.key=v1,v2"):
        parse_assignment("train.seed=", option="--grid", many=True)


def test_missing_and_invalid_params_files(tmp_path):
    with pytest.raises(ConfigError, match=r"params file '.*nope.yaml' not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)


def test_to_dict_round_trips_through_the_dataclass():
    cfg = TrainConfig(head="classical", shots=100)
    assert TrainConfig(**to_dict(cfg)) == cfg
    assert to_dict(Params())["data"]["splits"] == ["train", "val"]


def test_cli_maps_config_errors_to_a_nonzero_exit(tmp_path, capsys):
    from pipeline import extract

    code = extract.main(["--params", str(_empty(tmp_path)), "--set", "extract.wieghts=none"])
    assert code != 0
    err = capsys.readouterr().err
    assert "unknown key 'extract.wieghts'" in err and "weights" in err


def test_report_block_is_checked(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("report:\n  n_images: 9\n")
    params = load_params(p, ["report.seed=3"])
    assert (params.report.n_images, params.report.seed, params.report.dpi) == (9, 3, 100)
    with pytest.raises(ConfigError, match=r"report.n_images: expected an integer >= 1; got 0"):
        load_params(p, ["report.n_images=0"])
    with pytest.raises(ConfigError, match=r"report.dpi: expected an integer in \[20, 600\]"):
        load_params(p, ["report.dpi=5"])


def test_spiral_block_and_path_placeholders(tmp_path):
    params = load_params(_empty(tmp_path))
    assert params.spiral == SpiralConfig()
    assert (params.spiral.turns, params.spiral.data_seed) == (1.52, 21)
    assert params.spiral_out == "features/spiral-1.52.h5"
    p = load_params(
        _empty(tmp_path),
        ["spiral.turns=2", "train.features=f/s-{spiral.turns}-{spiral.data_seed}.h5"],
    )
    assert p.spiral.turns == 2.0 and p.features_path == "f/s-2.0-21.h5"
    assert p.expand("a{{b}}/{train.head}") == "a{b}/quantum"
    with pytest.raises(ConfigError, match=r"train.features: cannot fill .*'nope'"):
        _ = load_params(_empty(tmp_path), ["train.features=f/{nope.x}"]).features_path


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("spiral.turns=0", r"spiral.turns: expected a number > 0"),
        ("spiral.n_val=0", r"spiral.n_val: expected an integer >= 1"),
        ("spiral.n_train=4201", r"spiral.n_val \+ spiral.n_train: expected at most 2 \*"),
        ("train.init_std=-1", r"train.init_std: expected null or a number >= 0"),
        ("train.optimizer=sgd", r"train.optimizer: expected one of 'adam', 'pennylane_adam'"),
        ("train.loss_reduction=max", r"expected one of 'mean', 'sum'"),
        ("train.checkpoint=first", r"expected one of 'best', 'last'"),
        ("data.source=cifar10", r"data.classes: expected a list of at least 2 distinct"),
    ],
)
def test_wrong_values_of_the_new_keys(tmp_path, override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_params(_empty(tmp_path), [override])


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("train.head=cvv", r"train.head: expected one of 'quantum', 'classical', 'linear', 'cv'"),
        ("train.shuffle=no_thanks", r"train.shuffle: expected bool; got 'no_thanks'"),
        ("train.cv_layers=0", r"train.cv_layers: expected an integer >= 1; got 0"),
        ("qc.layers=26", r"qc.layers: expected an integer in \[0, 25\]; got 26"),
        ("qc.cutoff=3", r"qc.cutoff: expected an integer >= 4 \(the 4 x 4 image\); got 3"),
        ("qc.min_norm=1.5", r"qc.min_norm: expected a number in \[0, 1\]"),
        ("qq.cutoff=1", r"qq.cutoff: expected an integer >= 2; got 1"),
        ("qq.n_val_batches=0", r"qq.n_val_batches: expected an integer >= 1; got 0"),
        ("qq.pretrained=''", r"qq.pretrained: expected a file path"),
    ],
)
def test_wrong_values_of_the_photonic_keys(tmp_path, override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_params(_empty(tmp_path), [override])


def test_photonic_blocks_and_train_keys_default_to_the_papers(tmp_path):
    p = load_params(_empty(tmp_path))  # the code's defaults, not the repository's params.yaml
    assert p.train.shuffle is True and p.train.cv_layers == 3  # default: unchanged behaviour
    assert (p.qc.layers, p.qc.cutoff, p.qc.seed, p.qc.out) == (15, 11, 100, "features/qc.h5")
    assert (p.qq.cutoff, p.qq.seed, p.qq.out) == (15, 1, "features/qq.h5")
    assert p.qc.pretrained == "data/paper-pretrained/trained_params.npy"
    assert p.qq.url.startswith("https://raw.githubusercontent.com/XanaduAI/quantum-transfer")
    q = load_params(_empty(tmp_path), ["qq.out=features/qq-{qq.cutoff}.h5"])
    assert q.qq_out == "features/qq-15.h5"
