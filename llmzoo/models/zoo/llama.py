"""Meta's LLaMA family: LLaMA 1, LLaMA 2, Code Llama, Llama 3 / 3.1 / 3.2.

LLaMA (Touvron et al. 2023) = GPT-3's pre-norm decoder with RMSNorm, SwiGLU and rotary
embeddings (Minaee et al. 2024 and the LLM Zoo lecture notes: "best practices" from GPT-3, PaLM and GPT-Neo). LLaMA 2 adds 40%
more data, a 4k context and grouped-query attention in the largest sizes (Naveed et al. 2023).
"""

from __future__ import annotations

from llmzoo.config import ModelConfig, RopeScaling
from llmzoo.models.zoo.card import ModelCard, sized

LLAMA = ModelConfig(
    name="llama-7b", family="llama", arch="decoder", vocab_size=32000, d_model=4096, n_layers=32, n_heads=32,
    d_ff=11008, max_seq_len=2048, position="rope", rope_base=10000.0, activation="silu", mlp_gated=True,
    norm="rmsnorm", norm_eps=1e-6, tie_embeddings=False, bos_token_id=1, eos_token_id=2,
)
# name: (published, layers, d_model, heads, d_ff) -- Touvron et al. 2023a, Table 2 (6.7B, 13.0B, 32.5B, 65.2B)
LLAMA1 = {
    "llama-7b": (6.7e9, 32, 4096, 32, 11008),
    "llama-13b": (13.0e9, 40, 5120, 40, 13824),
    "llama-33b": (32.5e9, 60, 6656, 52, 17920),
    "llama-65b": (65.2e9, 80, 8192, 64, 22016),
}
LLAMA1_CONFIGS = {n: sized(LLAMA, n, n_layers=L, d_model=d, n_heads=h, d_ff=f) for n, (_, L, d, h, f) in LLAMA1.items()}

# LLaMA 2 (Touvron et al. 2023b): 4k context; GQA with 8 KV heads for 34B and 70B.
LLAMA2 = {
    # The 7B keeps LLaMA-1 7B's shape, which Touvron et al. 2023a count as 6.7B ("7B" is the name).
    "llama-2-7b": (6.7e9, 32, 4096, 32, None, 11008),
    "llama-2-13b": (13e9, 40, 5120, 40, None, 13824),
    "llama-2-34b": (34e9, 48, 8192, 64, 8, 22016),
    "llama-2-70b": (70e9, 80, 8192, 64, 8, 28672),
}
LLAMA2_CONFIGS = {
    n: sized(LLAMA, n, n_layers=L, d_model=d, n_heads=h, n_kv_heads=kv, d_ff=f, max_seq_len=4096, norm_eps=1e-5)
    for n, (_, L, d, h, kv, f) in LLAMA2.items()
}

# Code Llama (Roziere et al. 2023; the LLM Zoo lecture notes): LLaMA 2 trained on 500B code tokens, rope base 1e6 for
# 16k-100k contexts; 7B/13B add 16 infilling tokens to the vocabulary.
CODE_LLAMA = {
    "code-llama-7b": (6.7e9, "llama-2-7b", 32016),  # LLaMA-2-7B's shape: 6.7B (see LLAMA2)
    "code-llama-13b": (13e9, "llama-2-13b", 32016),
    "code-llama-34b": (34e9, "llama-2-34b", 32000),
}

# Llama 3 (Grattafiori et al. 2024): 128,256-token tiktoken vocabulary, GQA everywhere, rope base 5e5.
LLAMA3 = LLAMA.replace(name="llama-3-8b", vocab_size=128256, n_kv_heads=8, d_ff=14336, max_seq_len=8192,
                       rope_base=500000.0, norm_eps=1e-5, bos_token_id=128000, eos_token_id=128001)
LLAMA31_SCALING = RopeScaling(kind="llama3", factor=8.0, original_max_seq_len=8192)
LLAMA3_SIZES = {  # name: (published, layers, d_model, heads, d_ff, context, rope scaling, tied)
    "llama-3-8b": (8e9, 32, 4096, 32, 14336, 8192, None, False),
    "llama-3-70b": (70e9, 80, 8192, 64, 28672, 8192, None, False),
    "llama-3.1-405b": (405e9, 126, 16384, 128, 53248, 131072, LLAMA31_SCALING, False),
    "llama-3.2-1b": (1.23e9, 16, 2048, 32, 8192, 131072,
                     RopeScaling(kind="llama3", factor=32.0, original_max_seq_len=8192), True),
    "llama-3.2-3b": (3.21e9, 28, 3072, 24, 8192, 131072,
                     RopeScaling(kind="llama3", factor=32.0, original_max_seq_len=8192), True),
}


def _meta(name: str, params: float, year: int, config: ModelConfig | None, **kw) -> ModelCard:
    return ModelCard(name=name, family=kw.pop("family", "llama"), kind="decoder", params_published=params,
                     year=year, organisation="Meta", open_weights=True, config=config, **kw)


LLAMA1_ARCH = ("GPT-3-style pre-norm decoder with RMSNorm, SwiGLU and rotary embeddings; efficient causal "
               "attention and reduced activation recomputation (Naveed et al. 2023).")

CARDS = (
    *(
        _meta(
            name, params, 2023, LLAMA1_CONFIGS[name], context_length=2048,
            training_tokens=1.0e12 if name in ("llama-7b", "llama-13b") else 1.4e12,
            source="minaee2024, zoo-lecture, naveed2023, fm-notes",
            aliases=(name.replace("llama-", "llama-1-"),) + (("llama", "llama-1", "llama1") if name == "llama-65b" else ()),
            architecture=LLAMA1_ARCH,
            notes="Minaee et al. 2024: 7B-65B on 1T and 1.4T tokens (1T for 7B/13B, 1.4T for 33B/65B per the paper); "
                  "counts from Touvron et al. 2023a Table 2. LLaMA-13B beats GPT-3 175B on most benchmarks.",
        )
        for name, (params, *_) in LLAMA1.items()
    ),
    *(
        _meta(
            name, params, 2023, LLAMA2_CONFIGS[name], context_length=4096, training_tokens=2e12,
            source="minaee2024, zoo-lecture, naveed2023",
            aliases=(name.replace("-2-", "2-"),) + (("llama-2", "llama2") if name == "llama-2-7b" else ()),
            architecture="LLaMA with 40% more pretraining data, 4k context and grouped-query attention "
                         "(34B/70B); LLaMA-2-Chat adds SFT + RLHF (rejection sampling, PPO).",
            notes="The 34B base model was not released (its config is the one Code Llama 34B builds on).",
        )
        for name, (params, *_) in LLAMA2.items()
    ),
    *(
        _meta(
            name, params, 2023,
            sized(LLAMA2_CONFIGS[base], name, vocab_size=vocab, rope_base=1e6, max_seq_len=16384),
            base_model=base, training_tokens=500e9, context_length=16384, source="minaee2024, zoo-lecture",
            aliases=("code-llama", "codellama") if name == "code-llama-34b" else (),
            architecture="LLaMA 2 trained on 500B tokens (85% code, 8% code-related NL, 7% NL); infilling "
                         "(7B/13B), long-context fine-tuning from 4k to 100k tokens; Python and Instruct variants.",
            notes="Minaee et al. 2024 lists Code Llama with '34' parameters (34B) on 500B tokens.",
        )
        for name, (params, base, vocab) in CODE_LLAMA.items()
    ),
    *(
        _meta(
            name, params, 2024,
            sized(LLAMA3, name, n_layers=L, d_model=d, n_heads=h, d_ff=f, max_seq_len=ctx, rope_scaling=rs,
                  tie_embeddings=tied),
            context_length=ctx, training_tokens=9e12 if name.startswith("llama-3.2") else 15e12, source="zoo-lecture",
            aliases=("llama-3",) if name == "llama-3-8b" else (),
            architecture="LLaMA with GQA in every size, a 128K-token vocabulary and rope base 500,000; "
                         "3.1/3.2 stretch RoPE to 128K tokens (llama3 scaling).",
            notes="The LLM Zoo lecture notes: 'Llama 3.x from 1B to 405B'; sizes and shapes from Meta's model cards (not in the surveys).",
        )
        for name, (params, L, d, h, f, ctx, rs, tied) in LLAMA3_SIZES.items()
    ),
)
