"""ERNIE 3.0 (Sun et al. 2021, section 3.1 and figure 2): one shared backbone, two task modules.

    backbone   the universal representation module: a Transformer-XL stack (DecoderLM, head 'none',
               relative positions, segment recurrence) whose parameters every task shares
    nlu        natural language understanding: a bidirectional stack (EncoderModel) over the backbone's
               states, projected to its width; its masked-LM head gives the logits
    nlg        natural language generation: a unidirectional Transformer-XL stack (DecoderLM) over the
               backbone's states, projected to its width; its LM head gives the logits

The backbone here is causal for both tasks, so one pass of it serves both modules and the NLG path stays
causal end to end; the NLU module supplies the bidirectional view. (The paper shares the backbone between
the task paradigms "while controlling the attention mask matrices", which reads as a bidirectional backbone
for understanding; llmzoo's Transformer-XL attention encodes only distances >= 0, Dai et al. 2019's causal
form, so that would need negative distances too.)
The recurrence memory is the NLG task's only, as in the paper ("the memory module is only valid for
natural language generation tasks"): `out.mems` holds the backbone's layers, then the NLG module's.
"""

from __future__ import annotations

import torch
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.models.decoder import DecoderLM
from llmzoo.models.encoder import EncoderModel
from llmzoo.models.ernie3_config import Ernie3Config
from llmzoo.models.outputs import ModelOutput

TASKS = ("nlu", "nlg")


class Ernie3(nn.Module):
    def __init__(self, config: Ernie3Config) -> None:
        super().__init__()
        self.config = config
        width = config.backbone.d_model
        self.backbone = DecoderLM(config.backbone)
        # each module adapts the shared states to its own width (the paper does not say how; a bias-free
        # linear map, as RETRO's encoder reads the decoder's states)
        self.nlu_proj = nn.Linear(width, config.nlu.d_model, bias=False)
        self.nlu = EncoderModel(config.nlu)
        self.nlg_proj = nn.Linear(width, config.nlg.d_model, bias=False)
        self.nlg = DecoderLM(config.nlg)

    def represent(self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None,
                  mems: tuple[torch.Tensor, ...] | None = None) -> ModelOutput:
        """The universal representation: last_hidden_state (B, T, D) and, with mem_len > 0, the backbone's mems."""
        return self.backbone(input_ids, attention_mask=attention_mask, mems=mems)

    def read_nlu(self, h: torch.Tensor, *, attention_mask: torch.Tensor | None = None) -> ModelOutput:
        """The NLU module over backbone states h (B, T, D): masked-LM logits (B, T, V), bidirectional."""
        mask = attention_mask[:, -h.shape[1]:] if attention_mask is not None else None
        return self.nlu(inputs_embeds=self.nlu_proj(h), attention_mask=mask)

    def read_nlg(self, h: torch.Tensor, *, attention_mask: torch.Tensor | None = None,
                 mems: tuple[torch.Tensor, ...] | None = None, targets: torch.Tensor | None = None) -> ModelOutput:
        """The NLG module over backbone states h: next-token logits (or `loss` with targets), causal."""
        return self.nlg(inputs_embeds=self.nlg_proj(h), attention_mask=attention_mask, mems=mems, targets=targets)

    def forward(self, input_ids: torch.Tensor, *, task: str = "nlg", attention_mask: torch.Tensor | None = None,
                mems: tuple[torch.Tensor, ...] | None = None, targets: torch.Tensor | None = None) -> ModelOutput:
        """input_ids (B, T) -> the chosen module's logits (B, T, V). task 'nlg' (default: the causal LM, so
        training loops and generation use it as a decoder) or 'nlu' (masked LM). mems: what the last NLG
        forward returned in `out.mems`; attention_mask then covers mems + T tokens. targets (NLG only):
        next-token ids, giving `loss` instead of logits."""
        backbone_mems, nlg_mems = self._split(task, mems, targets)
        shared = self.represent(input_ids, attention_mask=attention_mask, mems=backbone_mems)
        if task == "nlu":
            return self.read_nlu(shared.last_hidden_state, attention_mask=attention_mask)
        out = self.read_nlg(shared.last_hidden_state, attention_mask=attention_mask, mems=nlg_mems, targets=targets)
        if "mems" in out:
            out.mems = shared.mems + out.mems
        return out

    def _split(self, task: str, mems, targets) -> tuple[tuple | None, tuple | None]:
        """(backbone mems, NLG mems); a LlmzooError for a task or memory this model cannot take."""
        if task not in TASKS:
            raise LlmzooError(f"task must be one of {TASKS}, got {task!r}")
        if task == "nlu" and (mems is not None or targets is not None):
            raise LlmzooError("task='nlu' takes neither mems (ERNIE 3.0's memory is the NLG task's only) nor "
                              "targets (score its masked-LM logits with an objective, e.g. llmzoo.objectives' mlm)")
        if mems is None:
            return None, None
        n = self.config.backbone.n_layers
        if len(mems) != n + self.config.nlg.n_layers:
            raise LlmzooError(f"mems must be the {n} backbone and {self.config.nlg.n_layers} NLG layers' memories "
                              f"that out.mems returned, got {len(mems)} tensors")
        return tuple(mems[:n]), tuple(mems[n:])
