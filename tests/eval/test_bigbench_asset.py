"""The bigbench asset's download path (no network: a fake package index): only the listed members of
the streamed sdist reach the disk, a sha256 that differs from the index's is refused, and an asset
fetched before a member was added to it counts as not fetched."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from llmzoo import assets
from llmzoo.errors import AssetMissingError, LlmzooError


def _sdist() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name in ("bigbench/benchmark_tasks/navigate/task.json", "bigbench/benchmark_tasks/other/task.json",
                     "bigbench/api/json_task.py", "setup.py"):
            data = json.dumps({"name": name}).encode()
            info = tarfile.TarInfo(f"bigbench-1.0.0/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def fake_index(monkeypatch, tmp_path):
    archive = _sdist()
    listing = {"sha256": hashlib.sha256(archive).hexdigest()}
    seen: list[str] = []

    def urlopen(request, timeout=None):
        url = getattr(request, "full_url", request)
        seen.append(url)
        if url.endswith("/simple/bigbench/"):
            files = [{"filename": "bigbench-1.0.0.tar.gz", "url": "https://files.example/bigbench-1.0.0.tar.gz",
                      "hashes": {"sha256": listing["sha256"]}}]
            return io.BytesIO(json.dumps({"files": files}).encode())
        return io.BytesIO(archive)

    monkeypatch.setattr(assets.urllib.request, "urlopen", urlopen)
    monkeypatch.setenv("LLMZOO_CACHE", str(tmp_path))
    monkeypatch.setenv("PIP_INDEX_URL", "https://index.example/simple")
    monkeypatch.setitem(assets.ASSETS, "bigbench", assets.Asset(
        "bigbench", "bigbench==1.0.0", "sdist-index", ("bigbench/benchmark_tasks/navigate/",), "test"))
    return listing, seen


def test_only_the_members_are_extracted(fake_index, tmp_path):
    _, seen = fake_index
    root = assets.fetch("bigbench")
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == [".complete", "bigbench/benchmark_tasks/navigate/task.json"]
    assert seen[0] == "https://index.example/simple/bigbench/"
    assert assets.is_fetched("bigbench")


def test_a_wrong_checksum_is_refused(fake_index):
    listing, _ = fake_index
    listing["sha256"] = "0" * 64
    with pytest.raises(LlmzooError, match="sha256"):
        assets.fetch("bigbench")
    assert not assets.is_fetched("bigbench")


def test_an_asset_missing_a_newer_member_is_stale(fake_index, monkeypatch):
    assets.fetch("bigbench")
    monkeypatch.setitem(assets.ASSETS, "bigbench", assets.Asset(
        "bigbench", "bigbench==1.0.0", "sdist-index",
        ("bigbench/benchmark_tasks/navigate/", "bigbench/benchmark_tasks/word_sorting/"), "test"))
    assert not assets.is_fetched("bigbench")
    with pytest.raises(AssetMissingError, match="python -m llmzoo.assets fetch bigbench"):
        assets.asset_path("bigbench", "bigbench/benchmark_tasks/navigate/task.json")


def test_an_html_only_index_works_too(fake_index, monkeypatch):
    listing, _ = fake_index
    archive = _sdist()
    page = (f'<html><body><a href="../../files/bigbench-0.0.1.tar.gz#sha256={"1" * 64}">bigbench-0.0.1.tar.gz</a>'
            f'<a href="../../files/bigbench-1.0.0.tar.gz#sha256={listing["sha256"]}">bigbench-1.0.0.tar.gz</a>'
            "</body></html>")
    seen = []

    def urlopen(request, timeout=None):
        url = getattr(request, "full_url", request)
        seen.append(url)
        return io.BytesIO(page.encode() if url.endswith("/simple/bigbench/") else archive)

    monkeypatch.setattr(assets.urllib.request, "urlopen", urlopen)
    assets.fetch("bigbench")
    assert seen[1] == "https://index.example/files/bigbench-1.0.0.tar.gz"
    assert assets.is_fetched("bigbench")


def test_an_optional_asset_the_index_lost_does_not_stop_the_set_up(monkeypatch, tmp_path, capsys):
    """PyPI now lists only bigbench 0.0.1: `fetch` of the default set warns and fetches the rest
    (exit 0); asked for by name it is an error naming the missing file (exit 2)."""
    def urlopen(request, timeout=None):  # the index as it is now: the 1.0.0 sdist is gone
        files = [{"filename": "bigbench-0.0.1.tar.gz", "url": "https://files.example/b.tar.gz",
                  "hashes": {"sha256": "1" * 64}}]
        return io.BytesIO(json.dumps({"files": files}).encode())

    fetched = []
    real_fetch = assets.fetch
    monkeypatch.setattr(assets.urllib.request, "urlopen", urlopen)
    monkeypatch.setenv("LLMZOO_CACHE", str(tmp_path))
    monkeypatch.setenv("PIP_INDEX_URL", "https://index.example/simple")
    monkeypatch.setattr(assets, "fetch", lambda name, force=False: real_fetch(name, force) if name == "bigbench"
                        else fetched.append(name) or tmp_path)
    assert assets.main(["fetch"]) == 0
    err = capsys.readouterr().err
    assert "warning: optional asset bigbench not fetched" in err and "bigbench-1.0.0.tar.gz" in err
    assert set(fetched) == set(assets.ASSETS) - {"bigbench"}
    assert assets.main(["fetch", "bigbench"]) == 2
    assert "error: the package index" in capsys.readouterr().err
