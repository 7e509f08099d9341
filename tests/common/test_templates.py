"""Path templates fill ``{block.key}`` with a scalar and refuse everything str.format would do."""

from __future__ import annotations

import pytest

from pipeline.common.config import Params, load_params
from pipeline.common.errors import ConfigError


def test_plain_placeholders_and_literal_braces():
    p = Params()
    expected = f"runs/{p.train.head}-seed{p.train.seed}"
    assert p.expand("runs/{train.head}-seed{train.seed}") == expected
    assert p.expand("features/spiral-{spiral.turns}.h5") == "features/spiral-1.52.h5"
    assert p.expand("a{{b}}/c") == "a{b}/c"
    assert p.expand("no placeholders") == "no placeholders"


@pytest.mark.parametrize(
    "template",
    [
        "runs/{train.__class__.__name__}",
        "runs/{train.__class__}",
        "runs/{train.head.__class__}",
        "runs/{train}",
        "runs/{train.lr!r}",
        "runs/{train.lr!s}",
        "runs/{train.lr:>40}",
        "runs/{train.lr:{train.seed}}",
        "runs/{train.head[0]}",
        "runs/{0}",
        "runs/{}",
        "runs/{train.nope}",
        "runs/{os.environ}",
        "runs/{train.lr",
        "runs/train.lr}",
    ],
)
def test_hostile_or_broken_templates_are_a_named_error(template):
    with pytest.raises(ConfigError, match=r"train.out_dir: cannot fill the placeholders"):
        Params().expand(template, "train.out_dir")


def test_a_template_cannot_reach_a_non_scalar_value(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  out_dir: runs/{data.splits}\n")
    with pytest.raises(ConfigError, match=r"data.splits is \('train', 'val'\); expected a string"):
        _ = load_params(params).out_dir


def test_a_secret_in_the_environment_does_not_end_up_in_a_path(tmp_path, monkeypatch):
    monkeypatch.setenv("QTL_SECRET_FOR_TEST", "hunter2")
    params = tmp_path / "params.yaml"
    chain = "{train.__init__.__globals__[os].environ[QTL_SECRET_FOR_TEST]}"
    params.write_text(f"train:\n  out_dir: runs/{chain}\n")
    with pytest.raises(ConfigError) as info:
        _ = load_params(params).out_dir
    assert "hunter2" not in str(info.value)
