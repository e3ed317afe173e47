"""llmzoo: every milestone large language model as real, runnable PyTorch code.

    import llmzoo
    model = llmzoo.load("smollm2-135m-instruct")
    tok = llmzoo.load_tokenizer("smollm2-135m-instruct")
    print(llmzoo.generate(model, tok, "The capital of France is", max_new_tokens=8))

The public names are imported lazily so `import llmzoo` (and the CLI) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load": "llmzoo.api",
    "save": "llmzoo.api",
    "load_tokenizer": "llmzoo.tokenizer",
    "generate": "llmzoo.infer.generate",
    "generate_ids": "llmzoo.infer.generate",
    "Engine": "llmzoo.infer.engine",
    "embed": "llmzoo.sentence_embedding",
    "ModelConfig": "llmzoo.config",
    "build_model": "llmzoo.models.build",
    "LlmzooError": "llmzoo.errors",
    "evaluate": "llmzoo.eval.harness",
}

# Sub-packages a user reaches as attributes after a bare `import llmzoo` (llmzoo.peft.apply(...)).
_SUBPACKAGES = ("peft", "eval", "models", "objectives", "data", "train", "convert", "infer", "tokenizer")

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"llmzoo.{name}")
    raise AttributeError(f"module 'llmzoo' has no attribute {name!r}")
