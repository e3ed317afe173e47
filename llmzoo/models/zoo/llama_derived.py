"""Models built on LLaMA weights or on its architecture by others (Minaee et al. 2024's "LLaMA family is
growing rapidly" list, the LLM Zoo lecture notes' Alpaca/Vicuna): instruction-tuned chat models, context-extended
and block-expanded variants, and small LLaMA-architecture models trained from scratch.

A fine-tune keeps its base model's architecture, so its config is the base config renamed.
"""

from __future__ import annotations

from llmzoo.models.zoo.card import ModelCard, sized
from llmzoo.models.zoo.llama import LLAMA, LLAMA1_CONFIGS, LLAMA2_CONFIGS

_BASES = {**LLAMA1_CONFIGS, **LLAMA2_CONFIGS}


def _tuned(name: str, params: float, year: int, base: str, organisation: str, **kw) -> ModelCard:
    """A fine-tune of a LLaMA checkpoint: same architecture as `base`. `params` is the base paper's
    count where the fine-tune's name rounds it (a "7B" LLaMA fine-tune has LLaMA-7B's 6.7B)."""
    return ModelCard(name=name, family="llama", kind="decoder", params_published=params, year=year,
                     organisation=organisation, base_model=base, config=sized(_BASES[base], name),
                     context_length=_BASES[base].max_seq_len, **kw)


TINYLLAMA = sized(LLAMA, "tinyllama-1.1b", n_layers=22, d_model=2048, n_heads=32, n_kv_heads=4, d_ff=5632,
                  norm_eps=1e-5)
LLAMA_PRO = sized(LLAMA2_CONFIGS["llama-2-7b"], "llama-pro-8b", n_layers=40)

CARDS = (
    _tuned("alpaca-7b", 6.7e9, 2023, "llama-7b", "Stanford", open_weights=True, source="minaee2024, zoo-lecture",
           aliases=("alpaca",),
           architecture="LLaMA-7B fine-tuned on 52K self-instruct demonstrations generated with text-davinci-003.",
           notes="The LLM Zoo lecture notes: cost about $600; not for commercial use. Released as a weight diff against LLaMA."),
    _tuned("vicuna-13b", 13e9, 2023, "llama-13b", "LMSYS", open_weights=True, source="minaee2024, zoo-lecture",
           aliases=("vicuna",),
           architecture="LLaMA-13B fine-tuned on ~70K user-shared ShareGPT conversations.",
           notes="Minaee et al. 2024 and the LLM Zoo lecture notes: >90% of ChatGPT quality as judged by GPT-4; training cost about $300."),
    _tuned("koala-13b", 13e9, 2023, "llama-13b", "UC Berkeley (BAIR)", open_weights=True, source="minaee2024",
           aliases=("koala",),
           architecture="LLaMA-13B fine-tuned on dialogue data, including responses of closed chat models such as ChatGPT."),
    _tuned("guanaco-65b", 65e9, 2023, "llama-65b", "University of Washington", open_weights=True, source="minaee2024",
           aliases=("guanaco",),
           architecture="LLaMA fine-tuned with QLoRA: gradients through a frozen 4-bit base into LoRA adapters; "
                        "65B fits on one 48GB GPU.",
           notes="Minaee et al. 2024: 99.3% of ChatGPT on the Vicuna benchmark after 24 hours on one GPU. Released as "
                 "adapters for 7B/13B/33B/65B."),
    _tuned("orca-13b", 13e9, 2023, "llama-13b", "Microsoft", open_weights=False, source="minaee2024",
           aliases=("orca",),
           architecture="LLaMA-13B trained to imitate GPT-4's explanation traces and step-by-step reasoning.",
           notes="Orca (Mukherjee et al. 2023) weights were not released."),
    _tuned("orca-2-13b", 13e9, 2023, "llama-2-13b", "Microsoft", open_weights=True, source="minaee2024",
           aliases=("orca-2", "orca2"),
           architecture="LLaMA-2-13B taught several reasoning strategies (step-by-step, recall-then-generate, direct answer).",
           notes="The table of Minaee et al. 2024 has an unexplained '2001B' in the tokens column for ORCA-2."),
    _tuned("gorilla-7b", 6.7e9, 2023, "llama-7b", "UC Berkeley", open_weights=True, source="minaee2024",
           aliases=("gorilla",),
           architecture="LLaMA-7B fine-tuned to write API calls, with retrieval of API documentation."),
    _tuned("tulu-65b", 65e9, 2023, "llama-65b", "Allen Institute for AI", open_weights=True, source="minaee2024",
           aliases=("tulu",),
           architecture="LLaMA-65B instruction-tuned on a mixture of open instruction datasets."),
    _tuned("stable-beluga-2", 70e9, 2023, "llama-2-70b", "Stability AI", open_weights=True, source="minaee2024",
           aliases=("stablebeluga2", "stable-beluga2"),
           architecture="LLaMA-2-70B fine-tuned on an Orca-style synthetic explanation dataset."),
    _tuned("dromedary-65b", 65e9, 2023, "llama-65b", "IBM / CMU", open_weights=True, source="minaee2024",
           aliases=("dromedary",),
           architecture="LLaMA-65B aligned by principle-driven self-alignment with minimal human supervision."),
    _tuned("fusellm-7b", 6.7e9, 2024, "llama-2-7b", "Sun Yat-sen University / Tencent AI Lab", open_weights=True,
           source="minaee2024", aliases=("fusellm",),
           architecture="LLaMA-2-7B continually trained to fuse the token distributions of several source LLMs "
                        "(LLaMA-2, MPT, OpenLLaMA)."),
    ModelCard(
        name="giraffe-13b", family="llama", kind="decoder", params_published=13e9, year=2023,
        organisation="Abacus.AI", open_weights=True, base_model="llama-13b", source="minaee2024", aliases=("giraffe",),
        architecture="LLaMA/LLaMA-2 with RoPE position interpolation fine-tuned for 4k-32k contexts.",
        notes="Card only: the released variants differ in base model and RoPE scaling.",
    ),
    ModelCard(
        name="vigogne", family="llama", kind="decoder", params_published=None, year=2023,
        organisation="community (Bofeng Huang)", open_weights=True, base_model="llama", source="minaee2024",
        architecture="LLaMA models instruction-tuned for French.",
        notes="Card only: several sizes, none singled out by the surveys.",
    ),
    ModelCard(
        name="longllama-3b", family="llama", kind="decoder", params_published=3e9, year=2023,
        organisation="IDEAS NCBR / Google DeepMind", open_weights=True, base_model="openllama-3b",
        training_tokens=1e12, source="minaee2024", aliases=("longllama",),
        architecture="OpenLLaMA fine-tuned with the Focused Transformer (FoT): some layers attend to a memory "
                     "of (key, value) pairs, extending context to 256k tokens.",
        notes="Minaee et al. 2024: 3B and 7B on OpenLLaMA (1T tokens). Card only: FoT memory layers are not a ModelConfig feature.",
    ),
    ModelCard(
        name="llama-pro-8b", family="llama", kind="decoder", params_published=8.3e9, year=2024,
        organisation="Tencent ARC", open_weights=True, base_model="llama-2-7b", training_tokens=80e9,
        context_length=4096, source="minaee2024", aliases=("llama-pro",), config=LLAMA_PRO,
        architecture="LLaMA-2-7B with 8 identity-initialised blocks inserted (block expansion, 32 -> 40 layers); "
                     "only new blocks trained on 80B code and math tokens.",
    ),
    ModelCard(
        name="tinyllama-1.1b", family="llama", kind="decoder", params_published=1.1e9, year=2024,
        organisation="SUTD StatNLP", open_weights=True, training_tokens=3e12, context_length=2048, source="minaee2024",
        aliases=("tinyllama",), config=TINYLLAMA,
        architecture="LLaMA-2 architecture at 1.1B (22 layers, GQA with 4 KV heads) trained on 3T tokens.",
    ),
)
