"""Prompt tuning (Lester et al. 2021, "The Power of Scale for Parameter-Efficient Prompt Tuning"):
n learned embeddings prepended to the input embeddings; only they train. peft's PROMPT_TUNING.

    llmzoo.peft.apply(model, "prompt_tuning", num_virtual_tokens=20)                     # random init
    llmzoo.peft.apply(model, "prompt_tuning", num_virtual_tokens=20, prompt_tuning_init="SAMPLE_VOCAB")
    llmzoo.peft.apply(model, "prompt_tuning", num_virtual_tokens=20, prompt_tuning_init="TEXT",
                      prompt_tuning_init_text="Classify the sentiment:", tokenizer=tok)

Initialisation as peft's `prompt_tuning_init`: RANDOM (N(0, 1), nn.Embedding's default),
SAMPLE_VOCAB (the embeddings of random vocabulary tokens: the paper's "sampled vocab" init) or TEXT
(the embeddings of a text's tokens, repeated or cut to n: the paper's class-label/text init).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.peft.names import ModuleNames
from llmzoo.peft.methods import Method, register
from llmzoo.peft.prompt_format import check_task, config_int, loaded_tokens, saved_tensors
from llmzoo.peft.virtual_tokens import Table, VirtualTokens, attach, check_n_tokens

OPTIONS = ("num_virtual_tokens", "prompt_tuning_init", "prompt_tuning_init_text", "tokenizer")
INITS = ("RANDOM", "SAMPLE_VOCAB", "TEXT")


class PromptTuning(VirtualTokens):
    kind = "input"


def initial_prompt(model: nn.Module, n: int, init: str, text: str | None, tokenizer: Any) -> torch.Tensor:
    """(n, D) starting embeddings, chosen as peft's prompt_tuning_init does."""
    table = model.embeddings.tokens.weight
    if init == "RANDOM":
        return torch.randn(n, table.shape[1])
    if init == "SAMPLE_VOCAB":
        ids = torch.randint(0, table.shape[0], (n,))
    elif init == "TEXT":
        if not text or tokenizer is None:
            raise LlmzooError("prompt_tuning_init='TEXT' needs prompt_tuning_init_text and a tokenizer")
        tokens = list(tokenizer.encode(text))
        if not tokens:
            raise LlmzooError(f"prompt_tuning_init_text {text!r} has no tokens")
        ids = torch.tensor((tokens * (n // len(tokens) + 1))[:n])  # repeat or cut to n, as peft does
    else:
        raise LlmzooError(f"prompt_tuning_init must be one of {', '.join(INITS)}, got {init!r}")
    return table.detach()[ids].float().clone()


def apply_prompt_tuning(model: nn.Module, **options: Any) -> None:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise LlmzooError(f"unknown prompt tuning option(s) {', '.join(unknown)}; valid: {', '.join(OPTIONS)}")
    n = check_n_tokens(options.get("num_virtual_tokens", 20))
    prompt = initial_prompt(model, n, options.get("prompt_tuning_init", "RANDOM"),
                            options.get("prompt_tuning_init_text"), options.get("tokenizer"))
    attach(model, PromptTuning(Table(prompt.to(model.embeddings.tokens.weight.device)), n))


def prompt_config(model: nn.Module) -> dict[str, Any]:
    """peft's prompt-learning fields for this base (shared with P-tuning)."""
    c = model.config
    return {"num_virtual_tokens": model.virtual_tokens.n_tokens, "token_dim": c.d_model,
            "num_transformer_submodules": 1, "num_attention_heads": c.n_heads, "num_layers": c.n_layers}


def save_prompt_tuning(model: nn.Module, names: ModuleNames) -> tuple[dict, dict]:
    # peft re-initialises nothing when loading (the embeddings are saved), so RANDOM is always valid
    return saved_tensors(model, names), {**prompt_config(model), "prompt_tuning_init": "RANDOM",
                                              "prompt_tuning_init_text": None, "tokenizer_name_or_path": None}


def load_prompt_tokens(model: nn.Module, cfg: dict, tensors: dict, names: ModuleNames, where: str,
                       cls: type[VirtualTokens]) -> None:
    """Read peft's prompt_embeddings (prompt tuning or P-tuning) into a fixed, trainable table."""
    check_task(model, cfg, where)
    # peft's SEQ_2_SEQ_LM default is 2 (n rows per stack) but its forward prepends only the first n
    # rows, to the encoder input; so does llmzoo
    submodules = cfg.get("num_transformer_submodules") or 1
    if submodules not in ((1, 2) if model.config.arch == "encoder_decoder" else (1,)):
        raise LlmzooError(f"{where}: num_transformer_submodules={submodules} is not supported for a "
                          f"{model.config.arch} base")
    n = check_n_tokens(cfg.get("num_virtual_tokens"))
    config_int(cfg, "token_dim", model.config.d_model, where, "as its embedding width")
    values = loaded_tokens(model, tensors, names, where, n * submodules, model.config.d_model,
                           "num_virtual_tokens x num_transformer_submodules x embedding width")[:n]
    attach(model, cls(Table(values.to(model.embeddings.tokens.weight.device)), n))


def describe_prompt(cfg: dict, shapes: dict) -> dict:
    return {"num_virtual_tokens": cfg.get("num_virtual_tokens"), "token_dim": cfg.get("token_dim"),
            "trainable_parameters": sum(int(torch.Size(s).numel()) for s in shapes.values())}


register(Method(
    name="prompt_tuning", peft_type="PROMPT_TUNING", module_types=(PromptTuning,), apply=apply_prompt_tuning,
    save=save_prompt_tuning,
    load=lambda model, cfg, tensors, names, where: load_prompt_tokens(model, cfg, tensors, names, where, PromptTuning),
    describe=describe_prompt, title="prompt tuning",
))
