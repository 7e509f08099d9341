"""An OSError in any command is one line naming the path and the cause, exit 1, no traceback,
and nothing half-written: a read-only folder, an output path that is a folder or a file, a
name too long, and a full disk (a small tmpfs, where this host lets the tests mount one)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from pipeline import sweep as sweep_command
from pipeline import train_head as train_head_command
from pipeline.common.errors import describe_os_error
from pipeline.common.files import write_text


def _one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if " ERROR " in line]
    assert len(errors) == 1, err
    return errors[0]


def _train(store: Path, out: Path) -> int:
    sets = [f"train.features={store}", f"train.out_dir={out}", "train.epochs=1",
            "train.head=linear"]  # fmt: skip
    return train_head_command.main([a for s in sets for a in ("--set", s)])


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_describe_os_error_is_one_line_with_path_cause_and_advice():
    line = describe_os_error(OSError(errno.ENOSPC, "No space left on device", "runs/m.pt"))
    assert line.startswith("runs/m.pt: No space left on device; free some space")
    assert describe_os_error(OSError(errno.EIO, "a\nb")) == "a file: a b"


def test_train_head_into_a_read_only_folder(synthetic_store, tmp_path, read_only, capsys):
    store = synthetic_store(tmp_path / "blobs.h5")
    line = _one_line_error(capsys, _train(store, read_only / "head"))
    assert str(read_only) in line and ("Read-only" in line or "Permission denied" in line)
    assert _files(read_only) == []


def test_sweep_into_a_read_only_folder(synthetic_store, tmp_path, read_only, capsys):
    store = synthetic_store(tmp_path / "blobs.h5")
    code = sweep_command.main(
        ["--grid", "train.seed=0,1", "--out", str(read_only / "sw"),
         "--set", f"train.features={store}", "--set", "train.epochs=1"]
    )  # fmt: skip
    line = _one_line_error(capsys, code)
    assert str(read_only) in line
    assert _files(read_only) == []


def test_an_output_path_that_is_a_file_or_a_folder(synthetic_store, tmp_path, capsys):
    store = synthetic_store(tmp_path / "blobs.h5")
    (tmp_path / "file").write_text("not a folder")
    line = _one_line_error(capsys, _train(store, tmp_path / "file"))
    assert f"{tmp_path / 'file'}: exists and is not a folder" in line
    assert (tmp_path / "file").read_text() == "not a folder"

    (tmp_path / "metrics.json").mkdir()  # a folder where a file goes
    with pytest.raises(IsADirectoryError) as info:
        write_text(tmp_path / "metrics.json", "{}")
    assert info.value.filename == str(tmp_path / "metrics.json")  # not its temporary file
    assert info.value.filename2 is None
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_name_too_long(synthetic_store, tmp_path, capsys):
    store = synthetic_store(tmp_path / "blobs.h5")
    line = _one_line_error(capsys, _train(store, tmp_path / ("x" * 300)))
    assert "File name too long" in line and "choose a shorter name" in line


def test_train_head_on_a_full_disk_leaves_nothing_half_written(
    synthetic_store, tmp_path, small_disk, capsys
):
    store = synthetic_store(tmp_path / "blobs.h5")
    line = _one_line_error(capsys, _train(store, small_disk / "head"))
    assert f"{small_disk / 'head'}/" in line and "No space left on device" in line
    assert _files(small_disk) == [".head.lock"]  # no run folder, no temporary one


def test_files_written_together_all_stay_old_on_a_full_disk(tmp_path, small_disk):
    from pipeline.common.files import write_all

    a, b = small_disk / "summary.md", small_disk / "summary.json"
    write_all({a: b"old md"})  # one of the two pages
    with pytest.raises(OSError) as info:
        write_all({a: b"new md", b: b"x" * 65536})  # the first fits, the second does not
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(b)
    assert a.read_bytes() == b"old md"  # not the new one beside a missing other
    assert sorted(p.name for p in small_disk.iterdir()) == ["summary.md"]
