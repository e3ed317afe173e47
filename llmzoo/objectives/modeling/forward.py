"""forward_for_objective: run a model the way an objective needs, returning what its loss reads.

Most objectives are one forward pass over `objective.model_inputs(batch)`. The exceptions:
- ELECTRA: generator pass, sample replacements from its softmax, discriminator pass (two models);
- ALBERT: the sentence-order logits come out of the pair head as `nsp_logits`;
- XLM: `langs` go to the language embeddings (or, in a zoo XLM config, to the token-type table,
  which is where that config keeps its languages);
- GLM: the (B, 2, T) positions become GLMModel's `position_ids` and `block_position_ids`, the
  prefix length its `part_a_lengths`;
- MASS: `decoder_position_ids` are offsets a relative-position model ignores (see architectures.py).
Anything else a model cannot take is a one-line LlmzooError, never a silently dropped input.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.objectives.modeling.electra import ElectraPretrainingModel
from llmzoo.objectives.modeling.languages import LanguageEmbeddings
from llmzoo.objectives.modeling.spanbert import SpanBERTModel

_KIND_WORDS = {"decoder": "decoder-only", "encoder": "encoder-only", "encoder_decoder": "encoder-decoder"}


def model_kind(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    arch = getattr(config, "arch", None)
    if arch is None:
        raise LlmzooError(f"{type(model).__name__} has no llmzoo config; build it with build_model or model_for_objective")
    return arch


def objective_kinds(objective: Any) -> tuple[str, ...]:
    """The model kinds an objective instance trains: T5/UL2 batches are laid out for one kind (`format`)."""
    layout = getattr(objective, "format", None)
    if layout in ("decoder", "encoder_decoder"):
        return (layout,)
    return tuple(objective.fits)


def check_fits(model: nn.Module, objective: Any) -> None:
    """LlmzooError when `objective` cannot train `model` (wrong architecture or missing pieces)."""
    kind = model_kind(model)
    kinds = objective_kinds(objective)
    name = objective.name
    if kind not in kinds:
        wanted = " or ".join(_KIND_WORDS[k] for k in kinds)
        hint = ""
        if kind == "decoder" and "decoder" in objective.fits:
            hint = "; pass format='decoder' to lay its examples out as prefix-LM sequences"
        elif kind != "decoder":
            hint = "; build the matching model with model_for_objective"
        raise LlmzooError(f"objective {name!r} trains {wanted} models, but this model is {_KIND_WORDS[kind]}{hint}")
    if name == "electra" and not isinstance(model, ElectraPretrainingModel):
        raise LlmzooError("objective 'electra' trains a generator and a discriminator together; build them with "
                          "model_for_objective('electra', ...) (ElectraPretrainingModel)")
    if name == "spanbert" and getattr(objective, "sbo", False) and not isinstance(model, SpanBERTModel):
        raise LlmzooError("objective 'spanbert' with sbo=True needs the span-boundary head; build the model with "
                          "model_for_objective('spanbert', ...) or pass sbo=False")


def forward_for_objective(model: nn.Module, objective: Any, batch: dict[str, torch.Tensor],
                          generator: torch.Generator | None = None, *,
                          through: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The outputs `objective.loss(outputs, batch)` reads. ELECTRA samples its replacements with
    `generator` and adds `disc_input_ids` / `rtd_labels` to `batch` in place (its loss needs them).

    `model` is the llmzoo model (its config and class decide the inputs); `through` is the module
    actually called, when `model` runs inside a wrapper (DDP): the wrapper's forward has to be the
    one that runs, or its gradient sync never happens. Every objective is exactly one call."""
    check_fits(model, objective)
    call = model if through is None else through
    if objective.name == "electra":
        return _electra(call, objective, batch, generator)
    inputs = _inputs_for(model, objective, batch)
    outputs = call(**inputs)
    if objective.name == "albert" and "nsp_logits" in outputs and "sop_logits" not in outputs:
        outputs["sop_logits"] = outputs.pop("nsp_logits")  # ALBERT's sentence-order head is BERT's pair head
    return outputs


def _electra(call: nn.Module, objective: Any, batch: dict[str, torch.Tensor],
             generator: torch.Generator | None) -> dict[str, torch.Tensor]:
    if generator is None and "replacement_draws" not in batch:
        raise LlmzooError("electra samples the generator's replacements: pass a torch.Generator to forward_for_objective")

    def replace(gen_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        batch.update(objective.sample_replacements(gen_logits, batch, generator))
        return objective.discriminator_inputs(batch)

    # ElectraPretrainingModel.forward runs generator, `replace` and discriminator in one call
    outputs = call(**objective.model_inputs(batch), replace=replace)
    return {"logits": outputs["logits"], "rtd_logits": outputs["rtd_logits"]}


def _accepted(model: nn.Module) -> tuple[set[str], bool]:
    """(input names model.forward takes, whether it takes any). A wrapper that passes **inputs on
    to its inner model (`model` / `encoder` attribute) takes what that model takes."""
    params = list(inspect.signature(model.forward).parameters.values())
    names = {p.name for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD}
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return names, False
    inner = getattr(model, "model", None) or getattr(model, "encoder", None)
    if isinstance(inner, nn.Module):
        inner_names, inner_any = _accepted(inner)
        return names | inner_names, inner_any
    return names, True


def _inputs_for(model: nn.Module, objective: Any, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    inputs = dict(objective.model_inputs(batch))
    names, takes_any = _accepted(model)
    if "langs" in inputs and not isinstance(model, LanguageEmbeddings):
        langs = inputs.pop("langs")
        if getattr(model.config, "type_vocab_size", 0) > int(langs.max()) and "token_type_ids" not in inputs:
            inputs["token_type_ids"] = langs  # the zoo's XLM keeps its language embeddings as token types
        else:
            raise LlmzooError(f"objective {objective.name!r} gives language ids (langs) but this model has no language "
                              "embeddings; build it with model_for_objective or wrap it in LanguageEmbeddings")
    position_ids = inputs.get("position_ids")
    if position_ids is not None and position_ids.dim() == 3:
        if not getattr(model.config, "position_2d", False):
            raise LlmzooError(f"objective {objective.name!r} gives GLM's 2D position ids, but this model has one position "
                              "table; use a GLM model (position_2d=True), e.g. model_for_objective('glm', ...)")
        # GLMModel names them apart: position in Part A, position inside the span, Part A's length.
        inputs["position_ids"], inputs["block_position_ids"] = position_ids[:, 0], position_ids[:, 1]
        inputs["part_a_lengths"] = inputs.pop("prefix_lengths")
    if "decoder_position_ids" in inputs and "decoder_position_ids" not in names:
        if model.config.position not in ("relative_bias", "none"):
            raise LlmzooError(f"objective {objective.name!r} places the decoder tokens at their source positions, but "
                              f"this model's absolute ({model.config.position}) decoder positions cannot be set; "
                              "use a relative-position (T5-style) encoder-decoder")
        inputs.pop("decoder_position_ids")  # relative attention biases see only offsets: nothing is lost
    if not takes_any:
        unknown = sorted(set(inputs) - names)
        if unknown:
            raise LlmzooError(f"objective {objective.name!r} needs model inputs {', '.join(unknown)}, which "
                              f"{type(model).__name__} does not take; build the model with model_for_objective")
    return inputs
