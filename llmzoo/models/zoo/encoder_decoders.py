"""Encoder-decoder models: the original Transformer, T5, mT5, T0, UL2, BART (configs) and MASS, AlexaTM,
CPM-2 (cards). Built by `llmzoo.models.encoder_decoder` (arch="encoder_decoder"): a shared token table,
a bidirectional encoder and a causal decoder with cross-attention."""

from __future__ import annotations

from llmzoo.config import ModelConfig
from llmzoo.models.zoo.card import ModelCard, sized

# Vaswani et al. 2017: post-norm, sinusoidal positions, ReLU, embeddings scaled by sqrt(d_model) and shared
# between source, target and the pre-softmax projection (37K shared BPE for EN-DE).
TRANSFORMER = ModelConfig(
    name="transformer-base", family="transformer", arch="encoder_decoder", vocab_size=37000, d_model=512,
    n_layers=6, n_heads=8, d_ff=2048, max_seq_len=1024, position="sinusoidal", embed_scale=512**0.5,
    activation="relu", mlp_gated=False, mlp_bias=True, qkv_bias=True, attn_out_bias=True, norm="layernorm",
    norm_eps=1e-6, norm_placement="post", final_norm=False, tie_embeddings=True,
)

# T5 (Raffel et al. 2020; Naveed et al. 2023): pre-norm RMSNorm ("layer norm outside the residual path", no bias),
# ReLU MLP, no biases, bucketed relative position biases, tied embeddings with logits scaled by d^-0.5 (a rule
# on d_model, so a recipe that narrows the model keeps T5's head). The decoder starts from the pad token.
T5 = ModelConfig(
    name="t5-base", family="t5", arch="encoder_decoder", vocab_size=32128, d_model=768, n_layers=12, n_heads=12,
    d_ff=3072, max_seq_len=512, position="relative_bias", relative_buckets=32, relative_max_distance=128,
    activation="relu", mlp_gated=False, norm="rmsnorm", norm_eps=1e-6, tie_embeddings=True,
    logit_scale_rsqrt_d=True, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    attn_scale=1.0,  # no 1/sqrt(d_head) on the scores: T5 folds it into the query initialisation
)
T5_SIZES = {  # Raffel et al. 2020 (sec. 3.7): params, layers per stack, d_model, heads, head dim, d_ff
    "t5-small": (60e6, 6, 512, 8, 64, 2048),
    "t5-base": (223e6, 12, 768, 12, 64, 3072),  # Minaee et al. 2024 (the paper rounds to 220M)
    "t5-large": (770e6, 24, 1024, 16, 64, 4096),
    "t5-3b": (3e9, 24, 1024, 32, 128, 16384),
    "t5-11b": (11e9, 24, 1024, 128, 128, 65536),
}


def _t5(base: ModelConfig, name: str, L: int, d: int, h: int, hd: int, f: int, **kw) -> ModelConfig:
    return sized(base, name, n_layers=L, d_model=d, n_heads=h, head_dim=hd, d_ff=f, **kw)


# T5 v1.1 (used by mT5, T0, UL2): gated-GELU feed-forward, untied output layer, no logit scaling.
T5_V11 = T5.replace(name="t5-v1.1", activation="gelu_tanh", mlp_gated=True, tie_embeddings=False,
                     logit_scale_rsqrt_d=False)
MT5_SIZES = {  # Xue et al. 2021, Table: params, layers, d_model, heads, head dim, d_ff
    "mt5-small": (300e6, 8, 512, 6, 64, 1024),
    "mt5-base": (580e6, 12, 768, 12, 64, 2048),
    "mt5-xxl": (13e9, 24, 4096, 64, 64, 10240),
}

# BART (Lewis et al. 2020): post-norm, learned positions (offset 2), LayerNorm on the embeddings of both stacks,
# GELU, tied embeddings. The decoder starts from </s> (fairseq's convention, kept by the released checkpoints).
BART = ModelConfig(
    name="bart-base", family="bart", arch="encoder_decoder", vocab_size=50265, d_model=768, n_layers=6, n_heads=12,
    d_ff=3072, max_seq_len=1024, position="learned", position_offset=2, embed_norm=True, activation="gelu",
    mlp_gated=False, mlp_bias=True, qkv_bias=True, attn_out_bias=True, norm="layernorm", norm_eps=1e-5,
    norm_placement="post", final_norm=False, tie_embeddings=True, pad_token_id=1, bos_token_id=0, eos_token_id=2,
    decoder_start_token_id=2,
)


def _seq2seq(name: str, params: float | None, year: int, organisation: str, config: ModelConfig | None,
             **kw) -> ModelCard:
    family = kw.pop("family", config.family if config is not None else name.split("-")[0])
    return ModelCard(name=name, family=family, kind="encoder-decoder", params_published=params, year=year,
                     organisation=organisation, open_weights=kw.pop("open_weights", True), config=config, **kw)


T5_ARCH = ("Text-to-text encoder-decoder: every task is seq2seq with a prompt prefix; span-corruption denoising "
           "(15% of tokens, contiguous spans share one sentinel), relative position biases, pre-norm RMSNorm.")

CARDS = (
    *(
        _seq2seq(name, params, 2017, "Google", sized(TRANSFORMER, name, d_model=d, n_heads=h, d_ff=f,
                                                     embed_scale=d**0.5),
                 open_weights=False, source="minaee2024", aliases=("transformer",) if name == "transformer-base" else (),
                 architecture="The original encoder-decoder Transformer: self-attention instead of recurrence, "
                              "post-norm residual blocks, sinusoidal positions.",
                 notes="Minaee et al. 2024 names the standard Transformer as a milestone; sizes from Vaswani et al. 2017 "
                       "Table 3 (EN-DE, 37K shared BPE).")
        for name, (params, d, h, f) in {"transformer-base": (65e6, 512, 8, 2048),
                                        "transformer-big": (213e6, 1024, 16, 4096)}.items()
    ),
    *(
        _seq2seq(name, params, 2019, "Google", _t5(T5, name, *shape),
                 training_tokens={"t5-base": 156e9, "t5-11b": 1e12}.get(name), context_length=512,
                 source="minaee2024, zoo-lecture, naveed2023", aliases={"t5-base": ("t5",)}.get(name, ()), architecture=T5_ARCH,
                 notes="Minaee et al. 2024: T5-Base 223M, 156B tokens; the LLM Zoo lecture notes: the largest has 11B parameters and saw 1T "
                       "tokens. Sizes from Raffel et al. 2020 (rounded there).")
        for name, (params, *shape) in T5_SIZES.items()
    ),
    *(
        _seq2seq(name, params, 2020, "Google", _t5(T5_V11, name, *shape, vocab_size=250112, max_seq_len=1024),
                 context_length=1024, source="minaee2024, zoo-lecture, naveed2023", aliases={"mt5-base": ("mt5",)}.get(name, ()),
                 architecture="Multilingual T5 (v1.1: gated-GELU, untied output) on mC4 (101 languages) with "
                              "language-balanced sampling; 250K SentencePiece vocabulary.",
                 notes="Minaee et al. 2024 lists 'MT5 (Base) 300M', which is mT5-Small's count in Xue et al. 2021 (Base: 580M).")
        for name, (params, *shape) in MT5_SIZES.items()
    ),
    *(
        _seq2seq(name, 11e9, 2021, "BigScience", _t5(T5_V11, name, 24, 4096, 64, 64, 10240), base_model="t5-v1.1-lm-11b",
                 context_length=1024, source="minaee2024, fm-notes", aliases={"t0pp-11b": ("t0pp", "t0++")}.get(name, ("t0",)),
                 architecture="LM-adapted T5 v1.1 XXL multitask-trained on many prompted datasets (varied "
                              "wordings), zero-shot generalisation to held-out tasks.",
                 notes="T0++ (the Foundation Model notes' T0PP) adds more training datasets.")
        for name in ("t0-11b", "t0pp-11b")
    ),
    # family t5: the released UL2 checkpoint is a T5 (v1.1 layout with gated-SiLU), so it saves as one
    _seq2seq("ul2-20b", 20e9, 2022, "Google", _t5(T5_V11, "ul2-20b", 32, 4096, 16, 256, 16384, activation="silu"),
             training_tokens=1e12, context_length=512, source="minaee2024, naveed2023", aliases=("ul2",),
             architecture="Encoder-decoder trained with the Mixture-of-Denoisers: R (regular spans), S (sequential "
                          "prefix) and X (extreme) denoisers, with mode tokens for fine-tuning.",
             notes="Shape and tokens from Tay et al. 2022 (gated-SiLU T5 v1.1); the architecture counts 19.5B."),
    _seq2seq("bart-base", 139e6, 2019, "Meta", BART, context_length=1024, source="minaee2024",
             aliases=("bart",),
             architecture="Denoising seq2seq autoencoder: corrupt text with arbitrary noise (token masking, deletion, "
                          "span infilling, sentence permutation, rotation) and reconstruct it.",
             notes="Minaee et al. 2024: 139M."),
    _seq2seq("bart-large", None, 2019, "Meta", sized(BART, "bart-large", d_model=1024, n_layers=12, n_heads=16,
                                                     d_ff=4096),
             context_length=1024, source="minaee2024",
             architecture="BART at BERT-large's width with 12 encoder and 12 decoder layers.",
             notes="No count in the surveys (the paper: about 10% more than a comparable BERT)."),
    _seq2seq("mass", None, 2019, "Microsoft", None, source="minaee2024", open_weights=True,
             architecture="Masked sequence-to-sequence pre-training: the encoder sees a sentence with a masked "
                          "fragment, the decoder predicts the fragment (6+6 layers, d=1024 in Song et al. 2019).",
             notes="Card only: vocabularies differ per language pair."),
    _seq2seq("alexatm-20b", 20e9, 2022, "Amazon", None, source="minaee2024, naveed2023", open_weights=True, aliases=("alexatm",),
             architecture="Multilingual seq2seq: encoder initialised from a pre-trained encoder and frozen for the "
                          "first 100k steps; denoising plus causal LM (20% of the time, switched by a [CLM] token); "
                          "beats PaLM-540B on 1-shot summarisation.",
             notes="Card only: the exact layer shapes are not in the surveys."),
    _seq2seq("cpm-2-11b", 11e9, 2021, "Tsinghua University / BAAI", None, source="naveed2023", family="cpm",
             aliases=("cpm-2",),
             architecture="Bilingual (Chinese, English) encoder-decoder on WuDaoCorpus with knowledge inheritance "
                          "(Chinese first, then both); prompt tuning; INFMOE offloading for 100B-scale inference.",
             notes="Card only. Its MoE sibling: cpm-2-moe-198b."),
)
