"""Google's LaMDA and FLAN (instruction-tuned LaMDA-PT). PaLM: palm.py; T5/UL2: encoder_decoders.py; GLaM: moe.py."""

from __future__ import annotations

from llmzoo.config import ModelConfig
from llmzoo.models.zoo.card import ModelCard, sized

# LaMDA (Thoppilan et al. 2022): decoder-only, 64 layers, d_model 8192, d_ff 65536, 128 heads of 128,
# gated-GELU feed-forward and T5 relative attention biases, 32k SentencePiece vocabulary.
LAMDA = ModelConfig(
    name="lamda-137b", family="lamda", arch="decoder", vocab_size=32000, d_model=8192, n_layers=64, n_heads=128,
    head_dim=128, d_ff=65536, max_seq_len=2048, position="relative_bias", activation="gelu", mlp_gated=True,
    norm="rmsnorm", tie_embeddings=True,
)

# Thoppilan et al. 2022 name T5's relative attention (not Transformer-XL's, unlike Gopher): a built model
# adds the decoder's learned causal bucket bias (one table shared by the layers, counted).
LAMDA_APPROX = ("T5-style relative attention biases are built as T5's causal buckets (position='relative_bias'); "
                "the paper gives no bucket count or maximum distance, so T5's 32 buckets up to 128 are used.")

CARDS = (
    ModelCard(
        name="lamda-137b", family="lamda", kind="decoder", params_published=137e9, year=2022, organisation="Google",
        open_weights=False, training_tokens=168e9, context_length=2048, source="minaee2024, zoo-lecture", aliases=("lamda",),
        config=LAMDA, approximation=LAMDA_APPROX,
        architecture="Dialogue decoder: 64 layers, gated-GELU, T5-style relative attention; fine-tuned for "
                     "quality, safety and groundedness, and to consult an external IR system.",
        notes="The table of Minaee et al. 2024: 168B tokens; its text and the LLM Zoo lecture notes: 1.56T words of public dialogue and web text "
              "(50% dialogue). Shape from Thoppilan et al. 2022; whether input/output embeddings are shared is "
              "not published (tied here).",
    ),
    ModelCard(
        name="flan-137b", family="lamda", kind="decoder", params_published=137e9, year=2021, organisation="Google",
        open_weights=False, base_model="lamda-137b", context_length=2048, source="minaee2024, zoo-lecture", aliases=("flan",),
        config=sized(LAMDA, "flan-137b"), approximation=LAMDA_APPROX,
        architecture="LaMDA-PT instruction-tuned on 60+ NLP datasets phrased as natural-language instruction "
                     "templates; better zero-shot than LaMDA, GPT-3 and GLaM (the LLM Zoo lecture notes).",
        notes="Minaee et al. 2024: base LaMDA-PT; the LLM Zoo lecture notes: 62 datasets.",
    ),
)
