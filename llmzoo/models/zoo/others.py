"""Other milestone decoders: Falcon, MPT, Qwen, Megatron(-Turing NLG), Jurassic-1, GLM-130B, and the
models the surveys name without a public architecture (HyperCLOVA, Yuan 1.0, PanGu-alpha, ERNIE 3.0, ...),
plus Mamba (a state-space model, not a transformer)."""

from __future__ import annotations

from llmzoo.config import ModelConfig
from llmzoo.models.ernie3_config import Ernie3Config
from llmzoo.models.zoo.card import ModelCard, sized
from llmzoo.models.zoo.gpt import GPT3

# Falcon (Almazrouei et al. 2023): parallel attention/MLP, multi-query (7B) or grouped (40B/180B, 8 KV heads)
# attention, rotary, no linear biases, tied embeddings, 65k vocabulary. 7B shares one LayerNorm between
# the branches, 40B/180B have one each ("new decoder architecture").
FALCON = ModelConfig(
    name="falcon-7b", family="falcon", arch="decoder", vocab_size=65024, d_model=4544, n_layers=32, n_heads=71,
    n_kv_heads=1, head_dim=64, d_ff=4 * 4544, max_seq_len=2048, position="rope", activation="gelu",
    mlp_gated=False, mlp_bias=False, qkv_bias=False, attn_out_bias=False, norm="layernorm", norm_eps=1e-5,
    parallel_residual=True, parallel_norms=1, tie_embeddings=True, bos_token_id=11, eos_token_id=11,
)
FALCON_SIZES = {  # params, layers, d_model, heads, kv heads, norms, tokens
    "falcon-7b": (7e9, 32, 4544, 71, 1, 1, 1.5e12),
    "falcon-40b": (40e9, 60, 8192, 128, 8, 2, 1e12),
    "falcon-180b": (180e9, 80, 14848, 232, 8, 2, 3.5e12),
}

# MPT (MosaicML 2023): ALiBi, no biases anywhere (LayerNorm without bias), tied embeddings.
MPT = ModelConfig(
    name="mpt-7b", family="mpt", arch="decoder", vocab_size=50432, d_model=4096, n_layers=32, n_heads=32,
    d_ff=4 * 4096, max_seq_len=2048, position="alibi", activation="gelu", mlp_gated=False, mlp_bias=False,
    qkv_bias=False, attn_out_bias=False, norm="layernorm", norm_bias=False, norm_eps=1e-5, tie_embeddings=True,
    eos_token_id=0,
)

# Qwen (Bai et al. 2023): LLaMA-like with biases on q/k/v, untied embeddings, 151,936-token vocabulary.
QWEN_7B = ModelConfig(
    name="qwen-7b", family="qwen", arch="decoder", vocab_size=151936, d_model=4096, n_layers=32, n_heads=32,
    d_ff=11008, max_seq_len=8192, position="rope", activation="silu", mlp_gated=True, qkv_bias=True,
    norm="rmsnorm", norm_eps=1e-6, tie_embeddings=False,
)
QWEN25_7B = sized(QWEN_7B, "qwen2.5-7b", family="qwen2", vocab_size=152064, d_model=3584, n_layers=28,
                  n_heads=28, n_kv_heads=4, d_ff=18944, max_seq_len=32768, rope_base=1e6,
                  bos_token_id=151643, eos_token_id=151643)

# Mamba (Gu & Dao 2023): every layer RMSNorm -> selective SSM mixer -> residual, no MLP and no positions;
# inner width 2d, state 16, conv 4, dt rank ceil(d/16); GPT-NeoX tokenizer padded to 50,280; tied embeddings.
MAMBA = ModelConfig(
    name="mamba-2.8b", family="mamba", arch="decoder", vocab_size=50280, d_model=2560, n_layers=64, n_heads=1,
    d_ff=2 * 2560, max_seq_len=2048, position="none", mixers=("mamba",), ffns=("none",), ssm_state_size=16,
    ssm_expand=2, ssm_conv_kernel=4, norm="rmsnorm", norm_eps=1e-5, tie_embeddings=True,
    bos_token_id=0, eos_token_id=0, pad_token_id=0,
)
MAMBA_SIZES = {"mamba-130m": (129e6, 24, 768), "mamba-2.8b": (2.8e9, 64, 2560)}  # params, layers, d_model

# Megatron-LM (Shoeybi et al. 2019) and MT-NLG (Smith et al. 2022): GPT-2/3 blocks split across GPUs.
MEGATRON_GPT = sized(GPT3, "megatron-lm-8.3b", family="megatron_gpt", vocab_size=51200, d_model=3072,
                     n_layers=72, n_heads=32, d_ff=4 * 3072, max_seq_len=1024)
MT_NLG = sized(GPT3, "mt-nlg-530b", family="megatron_gpt", vocab_size=51200, d_model=20480, n_layers=105,
               n_heads=128, d_ff=4 * 20480, max_seq_len=2048)

# Jurassic-1 (Lieber et al. 2021): GPT-3-like, shallower and wider, 256k-entry vocabulary of multi-word tokens.
JURASSIC = sized(GPT3, "j1-jumbo-178b", family="jurassic", vocab_size=256000, d_model=13824, n_layers=76,
                 n_heads=96, d_ff=4 * 13824)

# GLM-130B (Zeng et al. 2022): post-LN with DeepNorm, GeGLU, RoPE, bidirectional attention over the context
# and autoregressive blank infilling; 150k bilingual vocabulary; the embeddings' gradient shrunk to 0.1.
# Its layers (THUDM's code) normalise their input and add alpha times that normalised input back, and a final
# LayerNorm closes the stack: the same as post-LN blocks x = LN(alpha x + f(x)) after a LayerNorm on the
# embeddings, with no final norm after the last block's own (embed_norm=True, final_norm=False).
GLM_130B = ModelConfig(
    name="glm-130b", family="glm", arch="decoder", vocab_size=150528, d_model=12288, n_layers=70, n_heads=96,
    d_ff=32768, max_seq_len=2048, position="rope", activation="gelu", mlp_gated=True, mlp_bias=True,
    qkv_bias=True, attn_out_bias=True, norm="layernorm", norm_eps=1e-5, norm_placement="post", embed_norm=True,
    final_norm=False, tie_embeddings=True, deepnorm="glm130b", embed_grad_scale=0.1,
)

# PanGu-alpha 200B (Zeng et al. 2021, Table 1 and the MindSpore code): a GPT-3-like pre-LN decoder (learned
# positions, biases, FastGelu = x * sigmoid(1.702 x), i.e. quick_gelu), the embedding table as the LM head,
# 1024-token context, 40k vocabulary; its 64 layers are 63 blocks and the top query layer on them.
PANGU_ALPHA = ModelConfig(
    name="pangu-alpha-200b", family="pangu", arch="decoder", vocab_size=40000, d_model=16384, n_layers=63,
    n_heads=128, d_ff=65536, max_seq_len=1024, position="learned", activation="quick_gelu", mlp_gated=False,
    mlp_bias=True, qkv_bias=True, attn_out_bias=True, norm="layernorm", norm_eps=1e-5, tie_embeddings=True,
    top_query_layer=True,
)


# ERNIE 3.0 10B (Sun et al. 2021, "Pre-training Settings"): a Transformer-XL universal representation module of 48 layers,
# 4096 hidden units, 64 heads, and task-specific modules of 12 layers, 768 hidden units, 12 heads; GeLU;
# 512-token context and a 128-token memory for generation. Not published, so taken from the released ERNIE 3.0
# models (nghuyong/ernie-3.0-base-zh: post-norm LayerNorm, biases, d_ff = 4 d, 40k vocabulary); post-norm stacks
# end normalised, so no final norm.
def _ernie3(part: str, **shape) -> ModelConfig:
    return ModelConfig(name=f"ernie-3.0-10b-{part}", family="ernie", vocab_size=40000, max_seq_len=512,
                       activation="gelu", mlp_gated=False, norm="layernorm", norm_placement="post", qkv_bias=True,
                       attn_out_bias=True, mlp_bias=True, final_norm=False, **shape)


_TASK_MODULE = dict(d_model=768, n_layers=12, n_heads=12, d_ff=3072)
ERNIE3_10B = Ernie3Config(
    "ernie-3.0-10b",
    backbone=_ernie3("backbone", arch="decoder", head="none", position="xl_relative", mem_len=128, d_model=4096,
                     n_layers=48, n_heads=64, d_ff=16384),
    nlu=_ernie3("nlu", arch="encoder", head="mlm", position="none", **_TASK_MODULE),
    nlg=_ernie3("nlg", arch="decoder", head="lm", position="xl_relative", mem_len=128, **_TASK_MODULE),
)


def _card(name: str, params: float | None, year: int, organisation: str, *, kind: str = "decoder",
          config: ModelConfig | None = None, family: str | None = None, **kw) -> ModelCard:
    family = family or (config.family if config is not None else name.split("-")[0])
    return ModelCard(name=name, family=family, kind=kind, params_published=params, year=year,
                     organisation=organisation, config=config, **kw)


CARDS = (
    *(
        _card(
            name, params, 2023, "Technology Innovation Institute (TII)", open_weights=True, training_tokens=tokens,
            context_length=2048, source="minaee2024",
            config=sized(FALCON, name, n_layers=L, d_model=d, n_heads=h, n_kv_heads=kv, parallel_norms=norms,
                         d_ff=4 * d),
            aliases=("falcon",) if name == "falcon-180b" else (),
            architecture="Parallel attention/MLP decoder with multi-query or grouped-query attention, rotary "
                         "positions, no biases; trained mostly on the filtered web corpus RefinedWeb.",
            notes="Minaee et al. 2024: Falcon 180B on 3.5T tokens. 7B/40B shapes and tokens from TII's model cards; the "
                  "40B architecture counts 41.8B parameters (40B is the rounded name).",
        )
        for name, (params, L, d, h, kv, norms, tokens) in FALCON_SIZES.items()
    ),
    _card("mpt-7b", 6.7e9, 2023, "MosaicML", open_weights=True, training_tokens=1e12, context_length=2048,
          source="minaee2024", aliases=("mpt",), config=MPT,
          architecture="Decoder with ALiBi, no biases, FlashAttention; trained on 1T tokens of text and code.",
          notes="Minaee et al. 2024: 7B on 1T tokens; MosaicML's model card gives 6.7B parameters."),
    _card("mpt-30b", 30e9, 2023, "MosaicML", open_weights=True, training_tokens=1e12, context_length=8192,
          source="minaee2024", config=sized(MPT, "mpt-30b", d_model=7168, n_layers=48, n_heads=64, d_ff=4 * 7168,
                                     max_seq_len=8192),
          architecture="MPT-7B's design at 30B with an 8k context."),
    _card("qwen-7b", 7e9, 2023, "Alibaba Cloud", open_weights=True, training_tokens=2.4e12, context_length=8192,
          source="minaee2024, zoo-lecture", aliases=("qwen",), config=QWEN_7B,
          architecture="LLaMA-like decoder (RMSNorm, SwiGLU, RoPE) with q/k/v biases and untied embeddings; "
                       "152K-token vocabulary for Chinese, English and code.",
          notes="Qwen's own checkpoint layout (family 'qwen') differs from Qwen2's; the architecture counts "
                "7.7B parameters (7B is the rounded name). Tokens from Bai et al. 2023."),
    _card("qwen2.5-7b", 7.61e9, 2024, "Alibaba Cloud", open_weights=True, training_tokens=18e12, context_length=32768,
          source="zoo-lecture", aliases=("qwen2.5",), config=QWEN25_7B,
          architecture="Qwen2 architecture: GQA (4 KV heads), q/k/v biases, rope base 1e6; 18T tokens.",
          notes="The LLM Zoo lecture notes name Qwen 2.5; count (7.61B) and tokens from Qwen's model card."),
    _card("megatron-lm-8.3b", 8.3e9, 2019, "NVIDIA", open_weights=False, context_length=1024, source="zoo-lecture",
          aliases=("megatron", "megatron-gpt-8.3b"), config=MEGATRON_GPT,
          architecture="GPT-2 scaled to 8.3B with intra-layer tensor (model) parallelism across GPUs; trained on "
                       "174GB of text (the LLM Zoo lecture notes).",
          notes="Shape from Shoeybi et al. 2019 (72 layers, d_model 3072, 32 heads)."),
    _card("mt-nlg-530b", 530e9, 2022, "Microsoft / NVIDIA", open_weights=False, training_tokens=270e9,
          context_length=2048, source="minaee2024, naveed2023", aliases=("megatron-turing-nlg", "mt-nlg"), config=MT_NLG,
          architecture="GPT-2-architecture causal decoder of 530B (3x GPT-3) trained with 3D parallelism "
                       "(DeepSpeed + Megatron) on filtered, mixed-in-batch datasets.",
          notes="Shape (105 layers, d_model 20480, 128 heads) and tokens from Smith et al. 2022."),
    _card("j1-jumbo-178b", 178e9, 2021, "AI21 Labs", open_weights=False, training_tokens=300e9, context_length=2048,
          source="naveed2023", aliases=("jurassic-1", "j1-jumbo", "jurassic-1-jumbo"), config=JURASSIC,
          approximation="The white paper publishes depth, width, heads and vocabulary; positions, activation "
                        "and biases follow GPT-3 here.",
          architecture="GPT-3-like decoder, shallower and wider (depth-width balance), 256K vocabulary of word "
                       "pieces, whole words and multi-word expressions.",
          notes="Naveed et al. 2023: J1-Large 7B and J1-Jumbo 178B. Shape from Lieber et al. 2021."),
    _card("j1-large-7.5b", 7.5e9, 2021, "AI21 Labs", open_weights=False, training_tokens=300e9, context_length=2048,
          source="naveed2023", aliases=("j1-large",),
          config=sized(JURASSIC, "j1-large-7.5b", d_model=4096, n_layers=32, n_heads=32, d_ff=4 * 4096),
          approximation="As J1-Jumbo: only shapes and vocabulary are published.",
          architecture="The smaller Jurassic-1 model.",
          notes="Naveed et al. 2023 calls it 7B; the paper's count is 7.5B."),
    _card("glm-130b", 130e9, 2022, "Tsinghua University / Zhipu AI", open_weights=True, training_tokens=400e9,
          context_length=2048, source="naveed2023, fm-notes", aliases=("glm",), config=GLM_130B,
          approximation="The blank-infilling attention (bidirectional over the context) is a prefix mask passed at "
                        "run time (prefix_lengths), not part of the config.",
          architecture="Bilingual (English/Chinese) GLM: autoregressive blank infilling with bidirectional context, "
                       "DeepNorm post-LN, GeGLU, RoPE; 5% multitask instruction data; embedding gradient shrink.",
          notes="DeepNorm (alpha = (2N)^0.5 = 11.8 on the residual, Xavier init with gain (2N)^-0.5 for ffn, v_proj "
                "and out_proj) and the embedding gradient shrink (0.1) are config fields (Zeng et al. 2022). The "
                "Foundation Model notes: better than GPT-3 on MMLU (+0.9%) and LAMBADA (+4.0%)."),
    _card("hyperclova-82b", 82e9, 2021, "Naver", open_weights=False, source="naveed2023", family="hyperclova",
          aliases=("hyperclova",),
          architecture="Korean language model with GPT-3's architecture.",
          notes="Card only: vocabulary and exact shape are not in the surveys."),
    _card("yuan-1.0-245b", 245e9, 2021, "Inspur", open_weights=False, source="naveed2023", family="yuan",
          aliases=("yuan-1.0", "yuan"),
          architecture="Chinese decoder trained on 5TB of filtered text (MDFS on Spark); hidden size, micro-batch "
                       "and global batch chosen for pipeline/tensor/data-parallel efficiency.",
          notes="Card only."),
    _card("pangu-alpha-200b", 207.0e9, 2021, "Huawei", open_weights=False, source="naveed2023", family="pangu",
          aliases=("pangu-alpha", "pangu-α"), config=PANGU_ALPHA, context_length=1024,
          architecture="Autoregressive decoder with an extra query layer on top of the transformer stack whose "
                       "attention query is a learned embedding of the next position.",
          notes="The count is Zeng et al. 2021's (Table 1: 207.0B, 64 layers of width 16384, FFN 65536, 128 heads); "
                "Naveed et al. 2023 give the name's 200B. The query layer is ModelConfig.top_query_layer. Sizes "
                "2.6B, 13B, 200B (Zeng et al. 2021); only the largest has a card."),
    _card("ernie-3.0-10b", 10e9, 2021, "Baidu", open_weights=False, source="minaee2024, naveed2023", family="ernie",
          aliases=("ernie-3.0",), training_tokens=375e9, context_length=512, composite=ERNIE3_10B,
          architecture="Transformer-XL backbone: a shared universal representation module feeding task-specific "
                       "NLU (auto-encoding) and NLG (auto-regressive) modules; trained on 4TB of text plus a "
                       "large knowledge graph.",
          notes="SOTA on 54 Chinese NLP tasks. Shapes from Sun et al. 2021 (pre-training settings: 48 x 4096 x 64 heads "
                "backbone, 12 x 768 x 12 heads task modules, 375B tokens). The counted 10.9B is the published "
                "10B plus Transformer-XL's per-layer W_R position projections of the backbone (48 x 4096^2 = "
                "0.81B): without them it is 10.08B. Built by llmzoo.models.ernie3 (Ernie3Config).",
          approximation="The backbone is causal for both tasks (the paper switches its attention mask by task; "
                        "llmzoo's Transformer-XL encodes distances >= 0 only), so one pass serves both modules; "
                        "the NLU module has no position encoding of its own (it reads position-aware backbone "
                        "states); each module reads the backbone through a bias-free projection; norm placement, "
                        "biases, d_ff = 4d and the 40k vocabulary come from the released ERNIE 3.0 base models."),
    _card("ernie-3.0-titan-260b", 260e9, 2021, "Baidu", open_weights=False, source="naveed2023", family="ernie",
          aliases=("ernie-3.0-titan",),
          architecture="ERNIE 3.0 scaled 26x with a credible and controllable generation task (self-supervised "
                       "adversarial and controllable LM losses).",
          notes="Card only."),
    _card("yalm-100b", 100e9, 2022, "Yandex", open_weights=True, source="minaee2024", family="yalm", aliases=("yalm",),
          architecture="GPT-like decoder for Russian and English.",
          notes="Named in the list of Minaee et al. 2024 only; card only."),
    _card("palmyra", None, 2023, "Writer", open_weights=True, source="minaee2024",
          architecture="Writer's family of business-focused decoders.",
          notes="Named in the list of Minaee et al. 2024 only; sizes vary by release. Card only."),
    _card("camel", None, 2023, "unspecified", kind="other", open_weights=True, source="minaee2024",
          architecture="Named in Minaee et al. 2024's list of representative work, without details.",
          notes="Most likely CAMEL (Li et al. 2023), communicative role-playing agents built on chat LLMs rather "
                "than a new pretrained model. Card only."),
    _card("metalm", None, 2022, "Microsoft", kind="other", open_weights=False, source="minaee2024",
          architecture="'Language models are general-purpose interfaces': a semi-causal LM docking bidirectional "
                       "encoders (text, vision) into a causal decoder.",
          notes="Named in the list of Minaee et al. 2024 only. Card only."),
    _card("pal", None, 2022, "Carnegie Mellon University", kind="other", open_weights=False, source="minaee2024",
          architecture="Program-Aided Language models: an LLM writes a program as its reasoning steps and an "
                       "interpreter computes the answer.",
          notes="A prompting method over existing LLMs, not a model with weights. Card only."),
    _card("docllm-7b", 7e9, 2024, "JPMorgan AI Research", open_weights=False, training_tokens=2e12, source="minaee2024",
          family="docllm", aliases=("docllm",), base_model="llama-2-7b",
          architecture="Layout-aware decoder: text tokens plus bounding boxes with disentangled spatial attention; "
                       "1B (Falcon-1B based) and 7B (LLaMA-2-7B based) sizes.",
          notes="Card only: the spatial attention projections are not ModelConfig features."),
    _card("openassistant", None, 2023, "LAION", open_weights=True, source="zoo-lecture", family="oasst",
          aliases=("open-assistant", "oasst"),
          architecture="Open conversational assistant: crowd-sourced conversations and rankings used to "
                       "fine-tune open base models (Pythia, LLaMA).",
          notes="The LLM Zoo lecture notes: in development, anyone can add or label conversations. Several released sizes; card only."),
    *(
        _card(name, params, 2023, "CMU / Princeton", family="mamba", open_weights=True, training_tokens=300e9,
              source="minaee2024", aliases=("mamba",) if name == "mamba-2.8b" else (),
              config=sized(MAMBA, name, d_model=d, n_layers=L, d_ff=2 * d),
              architecture="Selective state-space model (no attention): input-dependent SSM parameters, linear-time "
                           "recurrent inference; 130M to 2.8B trained on the Pile.",
              notes="Named in the list of Minaee et al. 2024. Mixer-only layers (llmzoo.nn.mamba) from the per-layer "
                    "spec; loads transformers' MambaForCausalLM directories (state-spaces/mamba-*-hf). The 130M "
                    "model counts 129M with its tied embeddings.")
        for name, (params, L, d) in MAMBA_SIZES.items()
    ),
)
