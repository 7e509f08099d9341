"""fetch_data against a local HTTP server on 127.0.0.1 serving archives the tests build."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
import urllib.request
import zipfile
from pathlib import Path

import pytest

from pipeline import fetch_data
from pipeline.common.config import DataConfig
from pipeline.common.errors import DataError
from pipeline.sources.download import MANIFEST, fetch


def _zip_of(folder: Path, top: str = "hymenoptera_data") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(
                    path,
                    f"{top}/{path.relative_to(folder).as_posix()}"
                    if top
                    else path.relative_to(folder).as_posix(),
                )
    return buf.getvalue()


class _Server:
    """Serves ``files`` (URL path -> bytes) and counts requests."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _nothing_left(target: Path) -> None:
    assert not target.exists()
    leftovers = [p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}")]
    assert leftovers == []


def test_downloads_verifies_and_unpacks(server, tiny_data, tmp_path):
    body = _zip_of(tiny_data)
    server.files["/data.zip"] = body
    target = tmp_path / "data" / "hymenoptera_data"
    cfg = DataConfig(
        dir=str(target), url=server.url("/data.zip"), sha256=hashlib.sha256(body).hexdigest()
    )
    assert fetch(cfg) == target
    assert (target / "train" / "ants" / "a_rgb.jpg").read_bytes() == (
        tiny_data / "train" / "ants" / "a_rgb.jpg"
    ).read_bytes()
    assert sorted(p.name for p in target.parent.iterdir()) == ["hymenoptera_data"]
    # a second call is a no-op: no request reaches the server
    fetch(cfg)
    assert server.requests == ["/data.zip"]


def test_archive_without_top_folder_and_file_urls(tiny_data, tmp_path):
    archive = tmp_path / "flat.zip"
    archive.write_bytes(_zip_of(tiny_data, top=""))
    target = tmp_path / "out"
    fetch(DataConfig(dir=str(target), url=archive.as_uri()))
    assert (target / "val" / "bees" / "j_rgb.jpg").is_file()


def test_http_404(server, tmp_path):
    target = tmp_path / "d"
    with pytest.raises(
        DataError,
        match=r"download of http://127\.0\.0\.1:\d+/missing.zip failed: "
        r"HTTP 404",
    ):
        fetch(DataConfig(dir=str(target), url=server.url("/missing.zip")))
    _nothing_left(target)


def test_truncated_archive(server, tiny_data, tmp_path):
    server.files["/cut.zip"] = _zip_of(tiny_data)[:-300]
    target = tmp_path / "d"
    with pytest.raises(DataError, match="not a valid zip file"):
        fetch(DataConfig(dir=str(target), url=server.url("/cut.zip")))
    _nothing_left(target)


def test_wrong_checksum(server, tiny_data, tmp_path):
    server.files["/data.zip"] = _zip_of(tiny_data)
    target = tmp_path / "d"
    with pytest.raises(
        DataError, match=r"checksum mismatch .*expected sha256 0{64}.*got [0-9a-f]{64}"
    ):
        fetch(DataConfig(dir=str(target), url=server.url("/data.zip"), sha256="0" * 64))
    _nothing_left(target)


def test_corrupt_member(server, tiny_data, tmp_path):
    body = bytearray(_zip_of(tiny_data))
    # flip a byte inside the first member's data (after its 30-byte local header and name)
    name_len = int.from_bytes(body[26:28], "little") + int.from_bytes(body[28:30], "little")
    body[30 + name_len + 20] ^= 0xFF
    server.files["/data.zip"] = bytes(body)
    target = tmp_path / "d"
    with pytest.raises(DataError, match="corrupt"):
        fetch(DataConfig(dir=str(target), url=server.url("/data.zip")))
    _nothing_left(target)


def test_wrong_layout(server, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("stuff/readme.txt", "no splits here")
    server.files["/odd.zip"] = buf.getvalue()
    target = tmp_path / "d"
    with pytest.raises(DataError, match="expected layout"):
        fetch(DataConfig(dir=str(target), url=server.url("/odd.zip")))
    _nothing_left(target)


def test_unreachable_host_mentions_offline_alternatives(tmp_path):
    with pytest.raises(DataError, match=r"file:///path/to/archive\.zip"):
        fetch(DataConfig(dir=str(tmp_path / "d"), url="http://127.0.0.1:9/none.zip"))


def test_existing_folder_with_wrong_layout_is_an_error_not_overwritten(tmp_path):
    target = tmp_path / "d"
    (target / "train").mkdir(parents=True)
    with pytest.raises(DataError, match=r"split folder '.*d/val' does not exist"):
        fetch(DataConfig(dir=str(target), url="http://127.0.0.1:9/x.zip"))
    assert (target / "train").is_dir()


def test_main_exit_code(server, tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text(f"data:\n  dir: {tmp_path / 'd'}\n  url: {server.url('/nope.zip')}\n")
    assert fetch_data.main(["--params", str(params)]) == 1
    assert "HTTP 404" in capsys.readouterr().err


def test_a_queued_dvc_experiment_without_dvc_lock_points_at_the_commit(
    tmp_path, monkeypatch, capsys
):
    repo, workspace = tmp_path / "repo", tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmp1"
    workspace.mkdir(parents=True)
    (workspace / "params.yaml").write_text("data: {url: 'http://127.0.0.1:9/x.zip'}\n")
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("DVC_EXP_NAME", "lucky-dip")
    monkeypatch.setenv("DVC_ROOT", str(repo))

    def no_network(*args, **kwargs):
        raise AssertionError("no download should be tried")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    assert fetch_data.main([]) == 1
    err = capsys.readouterr().err
    assert "queued DVC experiment's workspace" in err
    assert 'git add dvc.lock runs && git commit -m "baseline' in err
    # in the repository itself (dvc exp run without --queue) it downloads as usual
    monkeypatch.setenv("DVC_ROOT", str(workspace))
    with pytest.raises(AssertionError, match="no download"):
        fetch_data.main([])


def _fetched(server, tiny_data, tmp_path) -> tuple[Path, DataConfig]:
    body = _zip_of(tiny_data)
    server.files["/data.zip"] = body
    target = tmp_path / "data" / "hymenoptera_data"
    cfg = DataConfig(
        dir=str(target), url=server.url("/data.zip"), sha256=hashlib.sha256(body).hexdigest()
    )
    fetch(cfg)
    return target, cfg


def test_the_unpacked_folder_records_each_images_digest(server, tiny_data, tmp_path):
    target, cfg = _fetched(server, tiny_data, tmp_path)
    record = json.loads((target / MANIFEST).read_text())
    assert record["archive_sha256"] == cfg.sha256
    image = "train/ants/a_rgb.jpg"
    assert record["images"][image] == hashlib.sha256((target / image).read_bytes()).hexdigest()


def test_a_changed_added_or_missing_image_is_refused(server, tiny_data, tmp_path):
    target, cfg = _fetched(server, tiny_data, tmp_path)
    image = next(iter(sorted((target / "train").rglob("*.jpg"))))
    data = image.read_bytes()
    image.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(DataError, match=r"differs from the archive .*changed: train/"):
        fetch(cfg)
    image.write_bytes(data)
    fetch(cfg)  # as unpacked again
    (image.parent / "planted.jpg").write_bytes(data)
    with pytest.raises(DataError, match=r"added: train/.*planted\.jpg"):
        fetch(cfg)
    (image.parent / "planted.jpg").unlink()
    image.unlink()
    with pytest.raises(DataError, match=r"missing: train/"):
        fetch(cfg)
    assert server.requests == ["/data.zip"]  # never downloaded again over the planted folder


def test_a_folder_unpacked_by_hand_is_refused_with_a_pinned_digest(tiny_data, tmp_path, caplog):
    cfg = DataConfig(dir=str(tiny_data), url="http://127.0.0.1:9/x.zip", sha256="0" * 64)
    with pytest.raises(DataError, match=r"no \.fetch-sha256\.json .*cannot be checked"):
        fetch(cfg)
    fetch(DataConfig(dir=str(tiny_data), url="http://127.0.0.1:9/x.zip"))
    assert "its images are not checked" in caplog.text


def test_a_manifest_of_another_archive_or_not_json_is_refused(server, tiny_data, tmp_path):
    target, cfg = _fetched(server, tiny_data, tmp_path)
    other = DataConfig(dir=cfg.dir, url=cfg.url, sha256="1" * 64)
    with pytest.raises(DataError, match=r"unpacked from an archive of sha256 .*expected 1111"):
        fetch(other)
    (target / MANIFEST).write_text("{nope")
    with pytest.raises(DataError, match=r"fetch-sha256.json is not JSON"):
        fetch(cfg)
