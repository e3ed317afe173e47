"""EleutherAI's open GPT-3 replications: GPT-Neo, GPT-J, GPT-NeoX-20B and the Pythia suite."""

from __future__ import annotations

from llmzoo.config import ModelConfig
from llmzoo.models.zoo.card import ModelCard, sized

# GPT-Neo (Black et al. 2021, mesh-tensorflow; the Foundation Model notes): GPT-2/3-like with alternating global and
# local (window 256) attention layers and unscaled attention logits.
GPT_NEO = ModelConfig(
    name="gpt-neo-2.7b", family="gpt_neo", arch="decoder", vocab_size=50257, d_model=2560, n_layers=32,
    n_heads=20, d_ff=4 * 2560, max_seq_len=2048, position="learned", activation="gelu_tanh", mlp_gated=False,
    mlp_bias=True, qkv_bias=False, attn_out_bias=True, attn_scale=1.0, sliding_window=256,
    layer_pattern=("global", "local"), norm="layernorm", norm_eps=1e-5, tie_embeddings=True,
    bos_token_id=50256, eos_token_id=50256,
)

# GPT-J-6B (Wang & Komatsuzaki 2021): parallel attention + MLP from one LayerNorm, rotary on 64 of 256
# head dims (interleaved pairs), untied output with a bias.
GPTJ = ModelConfig(
    name="gpt-j-6b", family="gptj", arch="decoder", vocab_size=50400, d_model=4096, n_layers=28, n_heads=16,
    d_ff=16384, max_seq_len=2048, position="rope", rope_fraction=0.25, rope_interleaved=True,
    activation="gelu_tanh", mlp_gated=False, mlp_bias=True, qkv_bias=False, attn_out_bias=False,
    norm="layernorm", norm_eps=1e-5, parallel_residual=True, parallel_norms=1, tie_embeddings=False,
    lm_head_bias=True, bos_token_id=50256, eos_token_id=50256,
)

# GPT-NeoX-20B (Black et al. 2022; Naveed et al. 2023): parallel attention/FF with two LayerNorms, rotary on 25% of
# each head (eq. 8 of the overview), dense layers only, untied embeddings.
GPT_NEOX = ModelConfig(
    name="gpt-neox-20b", family="gpt_neox", arch="decoder", vocab_size=50432, d_model=6144, n_layers=44,
    n_heads=64, d_ff=24576, max_seq_len=2048, position="rope", rope_fraction=0.25, activation="gelu",
    mlp_gated=False, mlp_bias=True, qkv_bias=True, attn_out_bias=True, norm="layernorm", norm_eps=1e-5,
    parallel_residual=True, parallel_norms=2, tie_embeddings=False, bos_token_id=0, eos_token_id=0,
)

PYTHIA = {  # Biderman et al. 2023, Table 1: name -> (layers, d_model, heads, vocab of the released checkpoint)
    "pythia-70m": (70e6, 6, 512, 8, 50304),
    "pythia-160m": (160e6, 12, 768, 12, 50304),
    "pythia-410m": (410e6, 24, 1024, 16, 50304),
    "pythia-1b": (1.0e9, 16, 2048, 8, 50304),
    "pythia-1.4b": (1.4e9, 24, 2048, 16, 50304),
    "pythia-2.8b": (2.8e9, 32, 2560, 32, 50304),
    "pythia-6.9b": (6.9e9, 32, 4096, 32, 50432),
    "pythia-12b": (12e9, 36, 5120, 40, 50688),
}


def _eleuther(name: str, params: float, year: int, config: ModelConfig, **kw) -> ModelCard:
    return ModelCard(name=name, family=config.family, kind="decoder", params_published=params, year=year,
                     organisation="EleutherAI", open_weights=True, config=config, **kw)


CARDS = (
    *(
        _eleuther(
            name, params, 2021, sized(GPT_NEO, name, n_layers=layers, d_model=d, n_heads=heads, d_ff=4 * d),
            context_length=2048, source="fm-notes", aliases=("gpt-neo",) if name == "gpt-neo-2.7b" else (),
            architecture="GPT-3-like decoder in mesh-tensorflow; global and local (window 256) attention layers alternate.",
            notes="Sizes from EleutherAI's release (125M, 1.3B, 2.7B); trained on the Pile.",
        )
        for name, (params, layers, d, heads) in {
            "gpt-neo-125m": (125e6, 12, 768, 12),
            "gpt-neo-1.3b": (1.3e9, 24, 2048, 16),
            "gpt-neo-2.7b": (2.7e9, 32, 2560, 20),
        }.items()
    ),
    _eleuther(
        "gpt-j-6b", 6e9, 2021, GPTJ, training_tokens=402e9, context_length=2048, source="minaee2024",
        aliases=("gpt-j",),
        architecture="Parallel attention and feed-forward sharing one LayerNorm; rotary embeddings on 64 dims per head.",
        notes="Minaee et al. 2024 names GPT-J among open models; size and shape from the release (6,053,381,344 parameters, "
              "402B Pile tokens).",
    ),
    _eleuther(
        "gpt-neox-20b", 20_554_567_680, 2022, GPT_NEOX, training_tokens=None, context_length=2048, source="naveed2023",
        aliases=("gpt-neox",),
        architecture="GPT-3 with parallel attention/FF (+15% throughput), rotary on 25% of head dims, dense layers "
                     "only; trained on the Pile without deduplication (Naveed et al. 2023).",
        notes="Exact count from Black et al. 2022 (the paper's 20B).",
    ),
    *(
        _eleuther(
            name, params, 2023,
            sized(GPT_NEOX, name, n_layers=layers, d_model=d, n_heads=heads, d_ff=4 * d, vocab_size=vocab),
            training_tokens=300e9, context_length=2048, source="minaee2024",
            aliases=("pythia",) if name == "pythia-12b" else (),
            architecture="GPT-NeoX design; 16 models trained on the public Pile in the same order, 154 checkpoints each.",
            notes="Minaee et al. 2024: 16 LLMs from 70M to 12B. Shapes from Biderman et al. 2023 (Table 1); ~300B tokens.",
        )
        for name, (params, layers, d, heads, vocab) in PYTHIA.items()
    ),
)
