"""Encoder-only models (the first category of Minaee et al. 2024, the LLM Zoo lecture notes' "BERT family"): BERT, mBERT, RoBERTa, XLM-R,
ALBERT, DeBERTa, ELECTRA, XLM, XLNet, SpanBERT, UniLM, Megatron-BERT, Longformer.

Their configs use arch="encoder" and are built by `llmzoo.models.encoder` (bidirectional stacks with
MLM / pre-training / replaced-token-detection heads). Published counts follow each paper's convention:
BERT's and ALBERT's include the pooler (head="pretraining": MLM + next-sentence/sentence-order heads).
"""

from __future__ import annotations

from llmzoo.config import ModelConfig
from llmzoo.models.zoo.card import ModelCard, sized

# BERT (Devlin et al. 2019): post-norm Transformer encoder, learned positions (512), two segment types,
# LayerNorm on the embeddings, GELU, WordPiece 30,522.
BERT = ModelConfig(
    name="bert-base", family="bert", arch="encoder", head="pretraining", vocab_size=30522, d_model=768,
    n_layers=12, n_heads=12, d_ff=3072, max_seq_len=512, position="learned", type_vocab_size=2, embed_norm=True,
    activation="gelu", mlp_gated=False, mlp_bias=True, qkv_bias=True, attn_out_bias=True, norm="layernorm",
    norm_eps=1e-12, norm_placement="post", final_norm=False, tie_embeddings=True, pooler="tanh", pad_token_id=0,
)
BERT_LARGE = sized(BERT, "bert-large", d_model=1024, n_layers=24, n_heads=16, d_ff=4096)

# RoBERTa (Liu et al. 2019): BERT's architecture, byte-level BPE 50,265, positions that count real tokens
# only, offset by pad_id + 1 = 2, one segment type, no NSP (MLM head, no pooler).
ROBERTA = sized(BERT, "roberta-base", family="roberta", head="mlm", pooler=None, vocab_size=50265,
                position_offset=2, positions_skip_padding=True, type_vocab_size=1, norm_eps=1e-5,
                pad_token_id=1, bos_token_id=0, eos_token_id=2)
ROBERTA_LARGE = sized(ROBERTA, "roberta-large", d_model=1024, n_layers=24, n_heads=16, d_ff=4096)

# ALBERT (Lan et al. 2020; the LLM Zoo lecture notes): V x E embeddings factorised through E=128, one set of block weights
# shared by all layers, sentence-order prediction instead of NSP.
ALBERT = sized(BERT, "albert-base", family="albert", vocab_size=30000, embed_dim=128, share_layers=True,
               activation="gelu_tanh", pad_token_id=0, bos_token_id=2, eos_token_id=3)
ALBERT_SIZES = {  # Lan et al. 2020, Table 1: params, layers, hidden, heads (d_ff = 4 hidden)
    "albert-base": (12e6, 12, 768, 12),
    "albert-large": (18e6, 24, 1024, 16),
    "albert-xlarge": (60e6, 24, 2048, 16),
    "albert-xxlarge": (235e6, 12, 4096, 64),
}

# ELECTRA (Clark et al. 2020): BERT-shaped discriminator trained with replaced-token detection.
ELECTRA = sized(BERT, "electra-base", family="electra", head="rtd", pooler=None)
ELECTRA_SIZES = {  # Clark et al. 2020: params, layers, hidden, heads, embedding size
    "electra-small": (14e6, 12, 256, 4, 128),
    "electra-base": (110e6, 12, 768, 12, 768),
    "electra-large": (335e6, 24, 1024, 16, 1024),
}

# DeBERTa (He et al. 2021; the LLM Zoo lecture notes): disentangled attention (content and relative-position vectors), an
# enhanced mask decoder that adds absolute positions before the softmax.
# No absolute positions: relative distances, log-bucketed into 256 buckets, index one shared 512 x d table
# (LayerNorm-ed) that the content q/k projections also project (share_att_key); c2p and p2c terms.
DEBERTA_APPROX = ("The enhanced mask decoder's absolute positions (used in pre-training only) and v2's extra "
                  "convolution beside the first layer (3d^2 weights, <0.5%) are not modelled.")
DEBERTA_V2 = sized(BERT, "deberta-v2-xxlarge", family="deberta_v2", head="mlm", pooler=None, vocab_size=128100,
                   type_vocab_size=0, position="none", attention_type="disentangled",
                   relative_buckets=256, relative_max_distance=512, embed_norm=True, norm_eps=1e-7, d_model=1536,
                   n_layers=48, n_heads=24, d_ff=6144, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                   extra=(("norm_rel_ebd", True), ("pos_att_type", ("p2c", "c2p")), ("share_att_key", True)))

# XLNet (Yang et al. 2019): two-stream attention with Transformer-XL relative positions (a W_r projection
# and r_w/r_r/r_s biases per layer), built by llmzoo.models.xlnet (attention_type="two_stream").
XLNET = ModelConfig(
    name="xlnet-base", family="xlnet", arch="encoder", head="lm", lm_head_bias=True, vocab_size=32000, d_model=768,
    n_layers=12, n_heads=12, d_ff=4 * 768, max_seq_len=512, position="none", attention_type="two_stream",
    activation="gelu",
    mlp_gated=False, mlp_bias=True, qkv_bias=False, attn_out_bias=False, norm="layernorm", norm_eps=1e-12,
    norm_placement="post", final_norm=False, tie_embeddings=True, pad_token_id=5, bos_token_id=1, eos_token_id=2,
)

# XLM (Lample & Conneau 2019): BERT-like post-norm encoder with language embeddings (as token types),
# MLM on text streams (TLM adds parallel sentence pairs). XLM-100: 16 layers, d=1280, 200k BPE vocabulary.
XLM_100 = sized(BERT, "xlm-100", family="xlm", head="none", pooler=None, vocab_size=200000, d_model=1280, n_layers=16,
                n_heads=16, d_ff=5120, type_vocab_size=100, pad_token_id=2, bos_token_id=0, eos_token_id=1)

# Megatron-BERT (Shoeybi et al. 2019): moving LayerNorm to the sub-layer inputs (pre-norm) is what let BERT
# scale past 336M without degrading.
MEGATRON_BERT = sized(BERT, "megatron-bert-3.9b", family="megatron_bert", d_model=2560, n_layers=48, n_heads=40,
                      d_ff=4 * 2560, norm_placement="pre", final_norm=True)


def _encoder(name: str, params: float | None, year: int, organisation: str, config: ModelConfig | None,
             **kw) -> ModelCard:
    family = kw.pop("family", config.family if config is not None else name.split("-")[0])
    return ModelCard(name=name, family=family, kind="encoder", params_published=params, year=year,
                     organisation=organisation, open_weights=kw.pop("open_weights", True), config=config, **kw)


BERT_ARCH = ("Bidirectional post-norm Transformer encoder pre-trained with masked language modelling and "
             "next-sentence prediction, fine-tuned with a task head.")

CARDS = (
    _encoder("bert-base", 110e6, 2018, "Google", BERT, training_tokens=137e9, context_length=512,
             source="minaee2024, zoo-lecture", aliases=("bert", "bert-base-uncased"), architecture=BERT_ARCH,
             notes="Minaee et al. 2024: 110M/340M, 137B tokens; the LLM Zoo lecture notes: base 12 blocks 110M, large 24 blocks 340M."),
    _encoder("bert-large", 340e6, 2018, "Google", BERT_LARGE, training_tokens=137e9, context_length=512,
             source="minaee2024, zoo-lecture", aliases=("bert-large-uncased",), architecture=BERT_ARCH),
    _encoder("mbert", None, 2018, "Google", sized(BERT, "mbert", vocab_size=119547), context_length=512,
             source="zoo-lecture", aliases=("bert-base-multilingual-cased", "multilingual-bert"),
             architecture="BERT-base trained on Wikipedia in 104 languages with a shared 119,547-piece WordPiece.",
             notes="Google's README calls it 110M (BERT-base's size); the larger vocabulary brings it to ~178M."),
    _encoder("roberta-base", 125e6, 2019, "Meta", ROBERTA, training_tokens=2.2e12, context_length=512,
             source="minaee2024, zoo-lecture", architecture="BERT trained longer on more data (16GB -> 160GB), batch 8K, 500K "
                                              "steps, dynamic masking, no NSP; byte-level BPE.",
             notes="Minaee et al. 2024 gives only the large size (355M); 125M for base is from the release."),
    _encoder("roberta-large", 355e6, 2019, "Meta", ROBERTA_LARGE, training_tokens=2.2e12, context_length=512,
             source="minaee2024, zoo-lecture", aliases=("roberta",),
             architecture="BERT-large trained longer on 160GB with large batches, dynamic masking and no NSP; "
                          "+3-4% on downstream tasks (the LLM Zoo lecture notes).",
             notes="Minaee et al. 2024: 355M, 2.2T tokens."),
    _encoder("xlm-r-base", 270e6, 2019, "Meta", sized(ROBERTA, "xlm-r-base", vocab_size=250002),
             context_length=512, source="zoo-lecture", aliases=("xlm-roberta-base",),
             architecture="RoBERTa trained on 2.5TB of CommonCrawl in 100 languages with a 250K SentencePiece "
                          "vocabulary; +23% over mBERT on low-resource languages (the LLM Zoo lecture notes).",
             notes="Counts from Conneau et al. 2020 (270M/550M). HF model_type 'xlm-roberta' (RoBERTa's layout)."),
    _encoder("xlm-r-large", 550e6, 2019, "Meta",
             sized(ROBERTA_LARGE, "xlm-r-large", vocab_size=250002), context_length=512, source="zoo-lecture",
             aliases=("xlm-roberta-large", "xlm-r", "xlm-roberta"),
             architecture="XLM-R at RoBERTa-large's depth and width."),
    *(
        _encoder(name, params, 2019, "Google",
                 sized(ALBERT, name, n_layers=L, d_model=d, n_heads=h, d_ff=4 * d), training_tokens=137e9,
                 context_length=512, source="minaee2024, zoo-lecture", aliases=("albert",) if name == "albert-base" else (),
                 architecture="BERT with a factorised embedding (V x 128 then 128 x H) and one block shared by all "
                              "layers: 18x fewer parameters than BERT-large, ~1.7x faster training; sentence-order "
                              "prediction replaces NSP.",
                 notes="Minaee et al. 2024: 12M, 18M, 60M, 235M (Lan et al. 2020, Table 1).")
        for name, (params, L, d, h) in ALBERT_SIZES.items()
    ),
    _encoder("deberta-v2-xxlarge", 1.5e9, 2020, "Microsoft", DEBERTA_V2, context_length=512, source="minaee2024, zoo-lecture",
             aliases=("deberta", "deberta-1.5b"), approximation=DEBERTA_APPROX,
             architecture="BERT/RoBERTa with disentangled attention (separate content and relative-position "
                          "vectors), an enhanced mask decoder with absolute positions, virtual adversarial fine-tuning.",
             notes="Minaee et al. 2024 gives no size; the LLM Zoo lecture notes: first to beat the SuperGLUE human baseline (90.3 vs 89.8), "
                   "which is the 1.5B model of He et al. 2021."),
    _encoder("deberta-v3-base", 184e6, 2021, "Microsoft",
             sized(DEBERTA_V2, "deberta-v3-base", head="rtd", d_model=768, n_layers=12, n_heads=12, d_ff=3072),
             context_length=512, source="minaee2024", approximation=DEBERTA_APPROX,
             architecture="DeBERTa trained ELECTRA-style (replaced-token detection) with gradient-disentangled "
                          "embedding sharing; 128K vocabulary.",
             notes="184M = 86M backbone + 98M embeddings (model card)."),
    *(
        _encoder(name, params, 2020, "Google / Stanford",
                 sized(ELECTRA, name, n_layers=L, d_model=d, n_heads=h, d_ff=4 * d, embed_dim=None if e == d else e),
                 context_length=512, source="minaee2024", aliases=("electra",) if name == "electra-base" else (),
                 architecture="Discriminator trained with replaced-token detection: a small generator corrupts "
                              "tokens, the discriminator tells which were replaced (learns from every token, "
                              "more efficient than MLM).",
                 notes="Sizes from Clark et al. 2020 (the surveys give none).")
        for name, (params, L, d, h, e) in ELECTRA_SIZES.items()
    ),
    _encoder("xlm-100", None, 2019, "Meta", XLM_100, context_length=512, source="minaee2024",
             aliases=("xlm",),
             architecture="Cross-lingual BERT: MLM on text streams (unsupervised) and translation LM on parallel "
                          "sentence pairs (supervised), with language embeddings.",
             notes="The surveys give no size; shape of the released XLM-100 (16 layers, d=1280, 200K vocabulary)."),
    *(
        _encoder(name, params, 2019, "Google / CMU",
                 sized(XLNET, name, n_layers=L, d_model=d, n_heads=h, d_ff=4 * d), training_tokens=32.89e9,
                 context_length=512, source="minaee2024, zoo-lecture", aliases=("xlnet",) if name == "xlnet-base" else (),
                 architecture="Autoregressive pre-training over permutations of the factorisation order (bidirectional "
                              "context without [MASK]), two-stream attention, Transformer-XL backbone.",
                 notes="Minaee et al. 2024: 110M/340M (BERT's sizes, which XLNet matches in depth and width); the released "
                       "models count ~117M/~361M because of the extra relative-position projection. Segment "
                       "recurrence (Transformer-XL memory) is a training-time cache, not a weight.")
        for name, (params, L, d, h) in {"xlnet-base": (110e6, 12, 768, 12), "xlnet-large": (340e6, 24, 1024, 16)}.items()
    ),
    *(
        _encoder(name, None, 2019, "Meta / University of Washington",
                 sized(BERT, name, head="mlm", pooler=None, vocab_size=28996, n_layers=L, d_model=d, n_heads=h, d_ff=4 * d),
                 context_length=512, source="zoo-lecture", aliases=("spanbert",) if name == "spanbert-large" else (),
                 architecture="BERT masking random-length spans (mean 3.8 tokens) with a span-boundary objective "
                              "predicting span tokens from the boundary tokens and relative position; no NSP.",
                 notes="BERT's sizes with a cased vocabulary; the span-boundary head is not modelled.")
        for name, (L, d, h) in {"spanbert-base": (12, 768, 12), "spanbert-large": (24, 1024, 16)}.items()
    ),
    _encoder("unilm-large", 340e6, 2019, "Microsoft",
             sized(BERT_LARGE, "unilm-large", family="unilm", head="mlm", pooler=None, vocab_size=28996), context_length=512,
             source="minaee2024", aliases=("unilm",),
             architecture="BERT-large trained with unidirectional, bidirectional and sequence-to-sequence LM "
                          "objectives selected by self-attention masks.",
             notes="Size from Dong et al. 2019 (same as BERT-large)."),
    _encoder("megatron-bert-3.9b", 3.9e9, 2019, "NVIDIA", MEGATRON_BERT, context_length=512, source="zoo-lecture",
             open_weights=False, aliases=("megatron-bert",),
             architecture="BERT scaled to 3.9B with tensor parallelism; pre-norm ordering of LayerNorm and residual "
                          "lets it train stably.",
             notes="The LLM Zoo lecture notes: BERT (3.9B) version of Megatron, 174GB of text. Shape from Shoeybi et al. 2019."),
    _encoder("longformer-large", 435e6, 2020, "Allen Institute for AI", None, context_length=4096, source="minaee2024",
             family="longformer", aliases=("longformer",),
             architecture="RoBERTa with sliding-window local attention plus task-specific global attention "
                          "(separate global q/k/v projections) for 4096-token documents.",
             notes="Card only: the extra global-attention projections are not ModelConfig fields."),
)
