"""The model side of pretraining objectives: the architecture each objective trains, the pieces no
model family provides (ELECTRA's generator/discriminator pair, SpanBERT's span-boundary head,
XLM's language embeddings), how each objective runs its model, and train_objective (a run of the
one training loop on an in-memory token stream).

    from llmzoo.objectives.modeling import model_for_objective, forward_for_objective, train_objective
    model = model_for_objective("t5_span", vocab_size=V, special_tokens=specials, size="tiny")
    outputs = forward_for_objective(model, objective, batch, generator)
    losses = train_objective("electra", stream, vocab_size=V, special_tokens=specials, steps=200)
"""

from __future__ import annotations

from llmzoo.objectives.modeling.architectures import ARCHITECTURES, SIZES, Architecture, architecture_for
from llmzoo.objectives.modeling.build import model_for_objective
from llmzoo.objectives.modeling.electra import ElectraPretrainingModel, generator_config
from llmzoo.objectives.modeling.evaluate import ContextCheck, context_check
from llmzoo.objectives.modeling.forward import check_fits, forward_for_objective
from llmzoo.objectives.modeling.languages import LanguageEmbeddings
from llmzoo.objectives.modeling.spanbert import SpanBERTModel, SpanBoundaryHead
from llmzoo.objectives.modeling.train import train_objective

__all__ = [
    "ARCHITECTURES", "SIZES", "Architecture", "ContextCheck", "ElectraPretrainingModel", "LanguageEmbeddings",
    "SpanBERTModel", "SpanBoundaryHead", "architecture_for", "check_fits", "context_check", "forward_for_objective",
    "generator_config", "model_for_objective", "train_objective",
]
