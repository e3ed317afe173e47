"""peft's on-disk form of the virtual-token methods (prompt tuning, P-tuning, prefix tuning): one
tensor, `prompt_embeddings` (n, width), the virtual tokens as computed (for P-tuning and projected
prefixes the encoder's output: peft does not save the encoder), plus a SEQ_CLS classifier; and the
checks that a saved adapter fits this base, each naming what differs."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.peft.names import ModuleNames

PROMPT_KEY = "prompt_embeddings"


def saved_tensors(model: nn.Module, names: ModuleNames) -> dict[str, torch.Tensor]:
    """What peft saves: the virtual tokens as computed, (n, width), and a classifier head's weights."""
    with torch.no_grad():
        tokens = model.virtual_tokens.tokens().detach().float().contiguous()
    return {PROMPT_KEY: tokens, **_head_tensors(model, names)}


def _head_tensors(model: nn.Module, names: ModuleNames) -> dict[str, torch.Tensor]:
    """peft trains (modules_to_save) and saves a SEQ_CLS model's classifier with the prompt, as
    base_model.<hf module>.weight/bias; llmzoo does the same (see attach)."""
    if model.config.head != "seq_cls":
        return {}
    hf = names.to_hf("classifier")
    return {f"base_model.{hf}.{name}": p for name, p in model.classifier.named_parameters()}


def loaded_tokens(model: nn.Module, tensors: dict[str, torch.Tensor], names: ModuleNames, where: str, n: int,
                  width: int, what: str) -> torch.Tensor:
    """The `prompt_embeddings` tensor of a saved adapter, checked against this base (a classifier
    head saved with it is copied into the model's)."""
    head = _head_tensors(model, names)
    missing = sorted(set(head) - set(tensors))
    if missing:
        raise LlmzooError(f"{where}: a classification adapter holds its classifier too; {missing[0]} is missing")
    extra = sorted(set(tensors) - {PROMPT_KEY} - set(head))
    if PROMPT_KEY not in tensors or extra:
        raise LlmzooError(f"{where}: a prompt-learning adapter holds one tensor {PROMPT_KEY!r}"
                          f"{' and the classifier' if head else ''}; found {', '.join(sorted(tensors)) or 'none'}")
    with torch.no_grad():
        for key, param in head.items():
            if tensors[key].shape != param.shape:
                raise LlmzooError(f"{where}: {key} has shape {tuple(tensors[key].shape)} but this base's classifier "
                                  f"needs {tuple(param.shape)} (another number of labels?)")
            param.copy_(tensors[key])
    values = tensors[PROMPT_KEY]
    if tuple(values.shape) != (n, width):
        raise LlmzooError(f"{where}: {PROMPT_KEY} has shape {tuple(values.shape)} but this base needs ({n}, {width}) "
                          f"({what}); the adapter was made for another model")
    return values


# peft task types by the kind of model they adapt (FEATURE_EXTRACTION fits any)
TASK_ARCH = {"CAUSAL_LM": "decoder", "SEQ_2_SEQ_LM": "encoder_decoder", "SEQ_CLS": "encoder",
             "TOKEN_CLS": "encoder", "QUESTION_ANS": "encoder"}


def check_task(model: nn.Module, cfg: dict[str, Any], where: str) -> None:
    """A prompt adapter places its tokens by task type: one for another kind of model is refused."""
    task = cfg.get("task_type")
    arch = TASK_ARCH.get(task)
    if arch is not None and arch != model.config.arch:
        raise LlmzooError(f"{where}: a {task} adapter is for a {arch.replace('_', '-')} model but this base "
                          f"({model.config.name}) is a {model.config.arch.replace('_', '-')} model")


def config_int(cfg: dict[str, Any], field: str, want: int, where: str, what: str) -> None:
    """A layer count or width in the adapter's config that must match this base: say which differs."""
    got = cfg.get(field)
    if got is not None and got != want:
        raise LlmzooError(f"{where}: the adapter's {field}={got} but this base has {want} {what}; "
                          f"the adapter was made for another model")
