"""Code models: CodeGen, SantaCoder/StarCoder (BigCode), DeepSeek-Coder, phi-1, CodeGen2.
(Codex: gpt.py; Code Llama: llama.py; AlphaCode: closed.py.)"""

from __future__ import annotations

from llmzoo.config import ModelConfig, RopeScaling
from llmzoo.models.zoo.card import ModelCard, sized
from llmzoo.models.zoo.llama import LLAMA

# CodeGen (Nijkamp et al. 2022): GPT-J's block (parallel attention/MLP, one LayerNorm, rotary on 64 dims
# per head, interleaved), untied output with bias.
CODEGEN_16B = ModelConfig(
    name="codegen-16b", family="codegen", arch="decoder", vocab_size=51200, d_model=6144, n_layers=34, n_heads=24,
    d_ff=4 * 6144, max_seq_len=2048, position="rope", rope_fraction=64 / 256, rope_interleaved=True,
    activation="gelu_tanh", mlp_gated=False, mlp_bias=True, qkv_bias=False, attn_out_bias=False,
    norm="layernorm", norm_eps=1e-5, parallel_residual=True, parallel_norms=1, tie_embeddings=False,
    lm_head_bias=True, bos_token_id=1, eos_token_id=50256,
)

# StarCoder (Li et al. 2023): GPT-2-style block with multi-query attention and learned positions over an
# 8k context (fill-in-the-middle training); input and output embeddings are shared (15.5B).
STARCODER = ModelConfig(
    name="starcoder-15.5b", family="gpt_bigcode", arch="decoder", vocab_size=49152, d_model=6144, n_layers=40,
    n_heads=48, n_kv_heads=1, d_ff=4 * 6144, max_seq_len=8192, position="learned", activation="gelu_tanh",
    mlp_gated=False, mlp_bias=True, qkv_bias=True, attn_out_bias=True, norm="layernorm", norm_eps=1e-5,
    tie_embeddings=True, bos_token_id=0, eos_token_id=0,
)
SANTACODER = sized(STARCODER, "santacoder-1.1b", vocab_size=49280, d_model=2048, n_layers=24, n_heads=16,
                   d_ff=4 * 2048, max_seq_len=2048)

# DeepSeek-Coder (Guo et al. 2024): LLaMA architecture, 32,256-token vocabulary, 16k context via rope base
# 1e5 with linear scaling 4; GQA in 33B.
DEEPSEEK_CODER = sized(LLAMA, "deepseek-coder-6.7b", vocab_size=32256, max_seq_len=16384, rope_base=100000.0,
                       rope_scaling=RopeScaling(kind="linear", factor=4.0), bos_token_id=32013, eos_token_id=32014)
DEEPSEEK_CODER_SIZES = {  # params, layers, d_model, heads, kv heads, d_ff
    "deepseek-coder-1.3b": (1.3e9, 24, 2048, 16, None, 5504),
    "deepseek-coder-6.7b": (6.7e9, 32, 4096, 32, None, 11008),
    "deepseek-coder-33b": (33e9, 62, 7168, 56, 8, 19200),
}

CARDS = (
    ModelCard(
        name="codegen-16b", family="codegen", kind="decoder", params_published=16.1e9, year=2022,
        organisation="Salesforce", open_weights=True, context_length=2048, source="minaee2024", aliases=("codegen",),
        config=CODEGEN_16B,
        architecture="GPT-J-style decoder trained on natural language then code (JAXFORMER); multi-turn program "
                     "synthesis benchmark MTPB.",
        notes="Minaee et al. 2024: up to 16.1B parameters. Shape from the released checkpoint (34 layers, d_model 6144).",
    ),
    ModelCard(
        name="codegen2", family="codegen", kind="decoder", params_published=None, year=2023, organisation="Salesforce",
        open_weights=True, source="minaee2024", aliases=("codegen-2",),
        architecture="CodeGen successor (1B-16B) with infilling and a prefix-LM objective study.",
        notes="Card only: several sizes, none given in the surveys.",
    ),
    ModelCard(
        name="starcoderbase-15.5b", family="gpt_bigcode", kind="decoder", params_published=15.5e9, year=2023,
        organisation="BigCode (Hugging Face, ServiceNow)", open_weights=True, training_tokens=1e12,
        context_length=8192, source="minaee2024", aliases=("starcoderbase",),
        config=sized(STARCODER, "starcoderbase-15.5b"),
        architecture="Decoder with multi-query attention (fast large-batch inference), 8k context and "
                     "fill-in-the-middle; trained on 1T tokens of permissively licensed GitHub code (The Stack).",
    ),
    ModelCard(
        name="starcoder-15.5b", family="gpt_bigcode", kind="decoder", params_published=15.5e9, year=2023,
        organisation="BigCode (Hugging Face, ServiceNow)", open_weights=True, base_model="starcoderbase-15.5b",
        training_tokens=35e9, context_length=8192, source="minaee2024", aliases=("starcoder", "startcoder"),
        config=STARCODER,
        architecture="StarCoderBase fine-tuned on 35B Python tokens.",
        notes="The table of Minaee et al. 2024 spells it 'StartCoder'; its 35B tokens are the Python fine-tuning.",
    ),
    ModelCard(
        name="santacoder-1.1b", family="gpt_bigcode", kind="decoder", params_published=1.1e9, year=2023,
        organisation="BigCode (Hugging Face, ServiceNow)", open_weights=True, context_length=2048, source="zoo-lecture",
        aliases=("santacoder",), config=SANTACODER,
        architecture="1.1B multi-query-attention decoder for Python, Java and JavaScript with fill-in-the-middle.",
    ),
    *(
        ModelCard(
            name=name, family="llama", kind="decoder", params_published=params, year=2024, organisation="DeepSeek",
            open_weights=True, training_tokens=2e12, context_length=16384, source="minaee2024",
            aliases=("deepseek-coder",) if name == "deepseek-coder-6.7b" else (),
            config=sized(DEEPSEEK_CODER, name, n_layers=L, d_model=d, n_heads=h, n_kv_heads=kv, d_ff=f),
            architecture="LLaMA-architecture code models trained on 2T tokens (87% code) at repository level, "
                         "with fill-in-the-middle and a 16k window.",
        )
        for name, (params, L, d, h, kv, f) in DEEPSEEK_CODER_SIZES.items()
    ),
    ModelCard(
        name="phi-1", family="phi", kind="decoder", params_published=1.3e9, year=2023, organisation="Microsoft",
        open_weights=True, context_length=2048, source="zoo-lecture",
        architecture="1.3B decoder trained on 'textbook quality' filtered and synthetic Python data.",
        notes="The LLM Zoo lecture notes list phi-1 among closed code models; its weights were released later. Card only.",
    ),
)
