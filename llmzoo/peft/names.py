"""Module names between llmzoo and the transformers model peft wraps, from the family's key map.

peft names a module by its path inside the transformers model ("model.layers.0.self_attn.q_proj"
for LlamaForCausalLM, "encoder.layer.0.attention.self.query" for a bare BertModel). The family's
declarative key map (llmzoo/convert/families/) already pairs every HF weight with ours, so a module
pairs with the module whose `.weight` its own `.weight` maps to.
"""

from __future__ import annotations

import re

from llmzoo.config import ModelConfig
from llmzoo.convert.families import family_by_name
from llmzoo.convert.hf import Family, _compile, _fill, _key_map
from llmzoo.errors import LlmzooError


class ModuleNames:
    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        try:
            self.family: Family | None = family_by_name(config.family)
        except LlmzooError:  # no transformers layout: the adapter keeps llmzoo's own module names
            self.family, self.strip = None, ""
            return
        pairs = [(h, z) for h, z in _key_map(self.family, config).items() if h.endswith(".weight")]
        self._to_hf = [(_compile(z), h) for h, z in pairs]
        self._to_zoo = [(_compile(h), z) for h, z in pairs]
        arch = self.family.config_to_hf(config)["architectures"][0]
        # A bare model class (BertModel) has no "bert." prefix on its modules; heads (BertForMaskedLM) do.
        bare = arch.endswith("Model") and not arch.endswith("LMHeadModel")
        self.strip = self.family.base_prefix if bare else ""

    def to_hf(self, zoo_module: str) -> str:
        if self.family is None:
            return zoo_module
        name = _rename(zoo_module + ".weight", self._to_hf)
        if name is None:  # e.g. a fused HF tensor split by a transform: no single module to name
            raise LlmzooError(f"module {zoo_module!r} has no single {self.family.name} HF module to save a peft adapter for")
        name = name[: -len(".weight")]
        return name[len(self.strip):] if self.strip and name.startswith(self.strip) else name

    def to_zoo(self, hf_module: str) -> str | None:
        if self.family is None:
            return hf_module
        for candidate in (hf_module, self.family.base_prefix + hf_module if self.family.base_prefix else None):
            if candidate is not None:
                name = _rename(candidate + ".weight", self._to_zoo)
                if name is not None:
                    return name[: -len(".weight")]
        return None


def _rename(key: str, table: list[tuple[re.Pattern, str]]) -> str | None:
    for regex, dst in table:
        m = regex.match(key)
        if m:
            return _fill(dst, m.groupdict())
    return None
