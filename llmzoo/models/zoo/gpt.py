"""OpenAI's GPT family with published architectures: GPT-1, GPT-2, GPT-3 and the GPT-3
derivatives whose sizes are published (WebGPT, InstructGPT). ChatGPT/GPT-4 live in closed.py.

GPT-2 (Radford et al. 2019) moved LayerNorm to the input of each sub-block and added a final
LayerNorm (Minaee et al. 2024); GPT-3 (Brown et al. 2020) kept GPT-2's design at up to 175B parameters.
"""

from __future__ import annotations

from llmzoo.config import ModelConfig
from llmzoo.models.zoo.card import ModelCard, sized

# GPT-1 (Radford et al. 2018): the original Transformer decoder, post-norm, learned positions,
# 40,478 BPE merges vocabulary, 512-token context (the LLM Zoo lecture notes).
GPT1 = ModelConfig(
    name="gpt-1", family="openai_gpt", arch="decoder", vocab_size=40478, d_model=768, n_layers=12,
    n_heads=12, d_ff=3072, max_seq_len=512, position="learned", activation="gelu", mlp_gated=False,
    mlp_bias=True, qkv_bias=True, attn_out_bias=True, norm="layernorm", norm_eps=1e-5,
    norm_placement="post", final_norm=False, tie_embeddings=True,
)

# GPT-2 (Minaee et al. 2024): pre-norm + final norm, 50,257-token byte-level BPE, 1024 context.
GPT2 = ModelConfig(
    name="gpt-2-1.5b", family="gpt2", arch="decoder", vocab_size=50257, d_model=1600, n_layers=48,
    n_heads=25, d_ff=6400, max_seq_len=1024, position="learned", activation="gelu_tanh", mlp_gated=False,
    mlp_bias=True, qkv_bias=True, attn_out_bias=True, norm="layernorm", norm_eps=1e-5,
    tie_embeddings=True, bos_token_id=50256, eos_token_id=50256,
)

# GPT-3 (Brown et al. 2020, Table 2.1): GPT-2's block, 2048 context, d_ff = 4 d_model.
GPT3 = GPT2.replace(name="gpt-3-175b", d_model=12288, n_layers=96, n_heads=96, d_ff=4 * 12288, max_seq_len=2048)


# Brown et al. 2020, section 2.1: "we use alternating dense and locally banded sparse attention patterns in
# the layers of the transformer, similar to the Sparse Transformer" (Child et al. 2019). As a layer pattern:
# dense ("global") and banded ("local": a query sees the last `sliding_window` keys) layers alternate. The
# band width and which kind comes first are not published; 256 and dense-first are GPT-Neo's (EleutherAI's
# open GPT-3 replication, eleuther.py), the nearest published choice.
GPT3_SPARSE_ATTENTION = dict(layer_pattern=("global", "local"), sliding_window=256)


def _gpt3(name: str, n_layers: int, d_model: int, n_heads: int, head_dim: int | None = None) -> ModelConfig:
    return sized(GPT3, name, n_layers=n_layers, d_model=d_model, n_heads=n_heads, head_dim=head_dim, d_ff=4 * d_model,
                 **GPT3_SPARSE_ATTENTION)


GPT3_SIZES = {  # name: (published params, layers, d_model, heads, head_dim)
    "gpt-3-125m": (125e6, 12, 768, 12, None),
    "gpt-3-350m": (350e6, 24, 1024, 16, None),
    "gpt-3-760m": (760e6, 24, 1536, 16, None),
    # Table 2.1 lists 24 heads of 128 for 1.3B, which would give 1.5B parameters; the published
    # 1.3B needs d_attn = d_model = 2048, so 16 heads of 128 here.
    "gpt-3-1.3b": (1.3e9, 24, 2048, 16, 128),
    "gpt-3-2.7b": (2.7e9, 32, 2560, 32, None),
    "gpt-3-6.7b": (6.7e9, 32, 4096, 32, None),
    "gpt-3-13b": (13e9, 40, 5140, 40, 128),  # d_model 5140 with 40 heads of 128 (d_attn 5120), as published
    "gpt-3-175b": (175e9, 96, 12288, 96, None),
}
GPT3_CONFIGS = {name: _gpt3(name, *shape) for name, (_, *shape) in GPT3_SIZES.items()}

GPT3_SPARSE = ("GPT-3 alternates dense and locally banded sparse attention layers (Sparse Transformer, "
               "the LLM Zoo lecture notes and Naveed et al. 2023); here dense and banded layers alternate, dense first, "
               "each banded layer seeing the last 256 keys: the band width and the order are not published, so both "
               "are GPT-Neo's (EleutherAI's replication). The parameter count is unaffected (sparsity removes no weights).")

GPT2_SIZES = {  # name: (published params in Radford et al. 2019 Table 2, layers, d_model, heads, aliases)
    "gpt-2-117m": (117e6, 12, 768, 12, ("gpt2", "gpt-2-small")),
    "gpt-2-345m": (345e6, 24, 1024, 16, ("gpt2-medium", "gpt-2-medium")),
    "gpt-2-762m": (762e6, 36, 1280, 20, ("gpt2-large", "gpt-2-large")),
    "gpt-2-1.5b": (1542e6, 48, 1600, 25, ("gpt2-xl", "gpt-2-xl", "gpt-2")),
}


def _openai(name: str, params: float | None, year: int, config: ModelConfig | None, **kw) -> ModelCard:
    kw.setdefault("family", config.family if config is not None else "gpt2")
    return ModelCard(name=name, kind="decoder", params_published=params, year=year, organisation="OpenAI",
                     config=config, **kw)


CARDS = (
    _openai(
        "gpt-1", 120e6, 2018, GPT1, open_weights=True, training_tokens=1.3e9, context_length=512,
        source="minaee2024, zoo-lecture", aliases=("openai-gpt", "gpt1"),
        architecture="12-layer post-norm Transformer decoder, generative pre-training then discriminative fine-tuning.",
        notes="The table of Minaee et al. 2024 gives 120M, the LLM Zoo lecture notes' 110M; the paper publishes no count. The config "
              "builds 116.5M (40,478 x 768 tied embeddings + 12 blocks).",
    ),
    *(
        _openai(
            name, params, 2019, sized(GPT2, name, n_layers=layers, d_model=d, n_heads=heads, d_ff=4 * d),
            open_weights=True, training_tokens=10e9 if name == "gpt-2-1.5b" else None, context_length=1024,
            source="minaee2024, zoo-lecture", aliases=aliases,
            architecture="GPT-1 with LayerNorm moved to each sub-block's input, a final LayerNorm, "
                         "residual-scaled init, 50,257-token byte-level BPE and 1024-token context.",
            notes="Parameter counts are the GPT-2 paper's (Table 2); the released checkpoints have "
                  "124M/355M/774M/1,557,611,200 (the paper under-counted the small sizes). Minaee et al. 2024: 1.5B, "
                  "10B tokens; the LLM Zoo lecture notes: 40GB WebText.",
        )
        for name, (params, layers, d, heads, aliases) in GPT2_SIZES.items()
    ),
    *(
        _openai(
            name, params, 2020, GPT3_CONFIGS[name], open_weights=False, training_tokens=300e9, context_length=2048,
            source="minaee2024, zoo-lecture, naveed2023", aliases=("gpt-3", "davinci") if name == "gpt-3-175b" else (),
            architecture="GPT-2's pre-norm decoder scaled to 175B; dense and locally banded sparse attention "
                         "alternate; in-context (few-shot) learning.",
            approximation=GPT3_SPARSE,
            notes="Sizes and shapes from Brown et al. 2020, Table 2.1 (Minaee et al. 2024 lists all eight sizes).",
        )
        for name, (params, *_) in GPT3_SIZES.items()
    ),
    *(
        _openai(
            f"webgpt-{size}", params, 2021, sized(GPT3_CONFIGS[f"gpt-3-{size}"], f"webgpt-{size}"),
            open_weights=False, base_model=f"gpt-3-{size}", context_length=2048, source="minaee2024",
            architecture="GPT-3 fine-tuned to browse with a text web browser: behaviour cloning, a reward model, "
                         "then RL and rejection sampling (Minaee et al. 2024).",
            approximation=GPT3_SPARSE, aliases=("webgpt",) if size == "175b" else (),
        )
        for size, params in (("760m", 760e6), ("13b", 13e9), ("175b", 175e9))
    ),
    _openai(
        "instructgpt-1.3b", 1.3e9, 2022, sized(GPT3_CONFIGS["gpt-3-1.3b"], "instructgpt-1.3b"),
        open_weights=False, base_model="gpt-3-1.3b", context_length=2048, source="zoo-lecture",
        architecture="GPT-3 aligned with RLHF (SFT, reward model, PPO mixed with pretraining updates).",
        approximation=GPT3_SPARSE,
        notes="The LLM Zoo lecture notes: outputs of the 1.3B InstructGPT are preferred to those of the 175B GPT-3.",
    ),
    _openai(
        "instructgpt-175b", 175e9, 2022, sized(GPT3_CONFIGS["gpt-3-175b"], "instructgpt-175b"),
        open_weights=False, base_model="gpt-3-175b", context_length=2048, source="minaee2024, zoo-lecture",
        aliases=("instructgpt",),
        architecture="GPT-3 fine-tuned on labeller demonstrations, then RLHF with PPO (Minaee et al. 2024, figure 7).",
        approximation=GPT3_SPARSE,
        notes="The table of the LLM Zoo lecture notes: 175B parameters, 77k prompts, 2048 context.",
    ),
    _openai(
        "codex-12b", 12e9, 2021, None, open_weights=False, base_model="gpt-3", source="minaee2024, zoo-lecture",
        aliases=("codex", "copilot"),
        architecture="GPT-3-family decoder fine-tuned on GitHub code; powers GitHub Copilot.",
        notes="Minaee et al. 2024 says Codex was released in March 2023; the Codex paper (Chen et al.) is from July 2021, "
              "as the survey's own table (2021) says. The exact 12B shape is not published.",
    ),
)
