"""P-tuning (Liu et al. 2021, "GPT Understands, Too"): the virtual tokens are produced by a small
prompt encoder from n learned inputs, which the paper found trains more stably than free
embeddings; peft's P_TUNING. The encoder is peft's PromptEncoder:
  MLP:  Linear(D, H) ReLU Linear(H, H) ReLU Linear(H, D)
  LSTM: bidirectional LSTM(D -> H, encoder_num_layers) then Linear(2H, 2H) ReLU Linear(2H, D)

    llmzoo.peft.apply(model, "p_tuning", num_virtual_tokens=20, encoder_hidden_size=128,
                      encoder_reparameterization_type="MLP")

Like peft, a saved adapter holds the encoder's output (prompt_embeddings), not the encoder, so a
loaded P-tuning adapter is a fixed table of virtual tokens (it can still train, as a table).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.peft.names import ModuleNames
from llmzoo.peft.methods import Method, register
from llmzoo.peft.prompt_tuning import describe_prompt, load_prompt_tokens, prompt_config
from llmzoo.peft.prompt_format import saved_tensors
from llmzoo.peft.virtual_tokens import VirtualTokens, attach, check_n_tokens

OPTIONS = ("num_virtual_tokens", "encoder_reparameterization_type", "encoder_hidden_size", "encoder_num_layers",
           "encoder_dropout")


class PTuning(VirtualTokens):
    kind = "input"


class PromptEncoder(nn.Module):
    """n learned inputs -> (n, D) virtual tokens through an MLP or a bidirectional LSTM."""

    def __init__(self, n: int, dim: int, hidden: int, kind: str = "MLP", num_layers: int = 2,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.kind = kind
        self.embedding = nn.Embedding(n, dim)
        if kind == "LSTM":
            self.lstm_head = nn.LSTM(dim, hidden, num_layers=num_layers, dropout=dropout, bidirectional=True,
                                     batch_first=True)
            self.mlp_head = nn.Sequential(nn.Linear(2 * hidden, 2 * hidden), nn.ReLU(), nn.Linear(2 * hidden, dim))
        elif kind == "MLP":
            self.mlp_head = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                          nn.Linear(hidden, dim))
        else:
            raise LlmzooError(f"encoder_reparameterization_type must be 'MLP' or 'LSTM', got {kind!r}")

    def forward(self) -> torch.Tensor:
        x = self.embedding.weight[None]  # (1, n, D): one sequence of the n inputs
        if self.kind == "LSTM":
            x = self.lstm_head(x)[0]  # (1, n, 2H)
        return self.mlp_head(x)[0]


def apply_p_tuning(model: nn.Module, **options: Any) -> None:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise LlmzooError(f"unknown P-tuning option(s) {', '.join(unknown)}; valid: {', '.join(OPTIONS)}")
    n = check_n_tokens(options.get("num_virtual_tokens", 20))
    dim = model.config.d_model
    hidden = options.get("encoder_hidden_size", dim)
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden <= 0:
        raise LlmzooError(f"encoder_hidden_size must be a positive integer, got {hidden!r}")
    encoder = PromptEncoder(n, dim, hidden, options.get("encoder_reparameterization_type", "MLP"),
                            options.get("encoder_num_layers", 2), options.get("encoder_dropout", 0.0))
    module = PTuning(encoder.to(model.embeddings.tokens.weight.device), n)
    module.settings = {"encoder_reparameterization_type": encoder.kind, "encoder_hidden_size": hidden,
                       "encoder_num_layers": options.get("encoder_num_layers", 2),
                       "encoder_dropout": options.get("encoder_dropout", 0.0)}
    attach(model, module)


def save_p_tuning(model: nn.Module, names: ModuleNames) -> tuple[dict, dict]:
    settings = getattr(model.virtual_tokens, "settings", None) or {
        "encoder_reparameterization_type": "MLP", "encoder_hidden_size": model.config.d_model,
        "encoder_num_layers": 2, "encoder_dropout": 0.0}
    return saved_tensors(model, names), {**prompt_config(model), **settings}


def load_p_tuning(model: nn.Module, cfg: dict, tensors: dict, names: ModuleNames, where: str) -> None:
    load_prompt_tokens(model, cfg, tensors, names, where, PTuning)
    model.virtual_tokens.settings = {k: cfg[k] for k in OPTIONS[1:] if k in cfg}


register(Method(
    name="p_tuning", peft_type="P_TUNING", module_types=(PTuning,), apply=apply_p_tuning, save=save_p_tuning,
    load=load_p_tuning, describe=describe_prompt, title="P-tuning",
))
