"""Ernie3Config: ERNIE 3.0's three stacks (Sun et al. 2021, "ERNIE 3.0: Large-scale Knowledge Enhanced
Pre-training for Language Understanding and Generation", section 3.1 and figure 2).

`backbone` is the universal representation module: a Transformer-XL stack (arch 'decoder', position
'xl_relative', head 'none') shared by every task. `nlu` is the natural-language-understanding module, a
bidirectional stack (arch 'encoder') with a masked-LM head; `nlg` the generation module, a unidirectional
Transformer-XL stack (arch 'decoder') with an LM head. Each task module reads the backbone's output
through its own projection to its width. Importing this module never imports torch (like clip_config and
retro_config), so the zoo stays cheap to list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from llmzoo.config import ModelConfig
from llmzoo.errors import ConfigError


@dataclass(frozen=True)
class Ernie3Config:
    name: str
    backbone: ModelConfig
    nlu: ModelConfig
    nlg: ModelConfig
    family: str = "ernie"
    arch: ClassVar[str] = "ernie3"  # build_model's key (llmzoo.models.build.BUILDERS)
    position_2d: ClassVar[bool] = False  # build_model asks (GLM's routing), as of CLIPConfig

    def __post_init__(self) -> None:
        b, u, g = self.backbone, self.nlu, self.nlg
        checks = [
            (b.arch == "decoder" and b.position == "xl_relative",
             f"{self.name}: backbone must be a Transformer-XL stack (arch 'decoder', position 'xl_relative'), "
             f"got arch={b.arch!r}, position={b.position!r}"),
            (b.head == "none", f"{self.name}: backbone.head must be 'none' (the task modules own the heads), got {b.head!r}"),
            (u.arch == "encoder" and u.head == "mlm",
             f"{self.name}: nlu must be a bidirectional stack with a masked-LM head (arch 'encoder', head 'mlm'), "
             f"got arch={u.arch!r}, head={u.head!r}"),
            (g.arch == "decoder" and g.head == "lm",
             f"{self.name}: nlg must be a unidirectional stack with an LM head (arch 'decoder', head 'lm'), "
             f"got arch={g.arch!r}, head={g.head!r}"),
            (u.vocab_size == b.vocab_size == g.vocab_size,
             f"{self.name}: vocab_size differs (backbone {b.vocab_size}, nlu {u.vocab_size}, nlg {g.vocab_size}); "
             "all three stacks score the backbone's tokens"),
            # a task module's input is the projected backbone state, d_model wide: a factorised token table
            # would expect E-wide inputs
            (u.emb_dim == u.d_model, f"{self.name}: nlu.embed_dim={u.embed_dim} must equal nlu.d_model={u.d_model} "
                                     "(its input is the backbone's output projected to d_model)"),
            (g.emb_dim == g.d_model, f"{self.name}: nlg.embed_dim={g.embed_dim} must equal nlg.d_model={g.d_model} "
                                     "(its input is the backbone's output projected to d_model)"),
            # the NLG module's memory runs alongside the backbone's, so one attention_mask covers both
            (g.mem_len == b.mem_len, f"{self.name}: nlg.mem_len={g.mem_len} must equal backbone.mem_len={b.mem_len} "
                                     "(one attention_mask covers the memory and the new tokens of both stacks)"),
            (u.max_seq_len >= b.max_seq_len and g.max_seq_len >= b.max_seq_len,
             f"{self.name}: task modules' max_seq_len (nlu {u.max_seq_len}, nlg {g.max_seq_len}) must cover "
             f"backbone.max_seq_len={b.max_seq_len}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)

    @property
    def vocab_size(self) -> int:
        return self.backbone.vocab_size

    @property
    def mem_len(self) -> int:
        return self.backbone.mem_len

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family, "arch": self.arch, "backbone": self.backbone.to_dict(),
                "nlu": self.nlu.to_dict(), "nlg": self.nlg.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Ernie3Config":
        return cls(name=data["name"], family=data.get("family", "ernie"),
                   backbone=ModelConfig.from_dict(data["backbone"]), nlu=ModelConfig.from_dict(data["nlu"]),
                   nlg=ModelConfig.from_dict(data["nlg"]))

    def count_params(self) -> int:
        """The parameters Ernie3(self) creates (tied weights once), from the configs without torch; the
        stacks as build_model counts them plus the two bias-free projections from the backbone's width."""
        from llmzoo.flops import count_params

        b = self.backbone
        return (count_params(b) + count_params(self.nlu) + count_params(self.nlg)
                + b.d_model * (self.nlu.d_model + self.nlg.d_model))

    def summary(self) -> list[tuple[str, str]]:
        """`llmzoo show`'s lines for the three stacks."""
        b, u, g = self.backbone, self.nlu, self.nlg
        stack = lambda c: (f"{c.n_layers} layers, d_model {c.d_model}, {c.n_heads} heads of {c.hd}, "
                           f"d_ff {c.d_ff} {c.activation}")
        memory = f", recurrence memory of {b.mem_len} tokens" if b.mem_len else ""
        return [
            ("backbone", f"universal representation: {stack(b)}, Transformer-XL relative positions{memory}, "
                         f"vocab {b.vocab_size}, context {b.max_seq_len}; shared by both task modules"),
            ("NLU module", f"bidirectional: {stack(u)}, reads the backbone through a {b.d_model}-to-{u.d_model} "
                           "projection; masked-LM head tied to its token table"),
            ("NLG module", f"unidirectional: {stack(g)}, Transformer-XL positions{memory}, reads the backbone "
                           f"through a {b.d_model}-to-{g.d_model} projection; LM head tied to its token table"),
        ]
