"""ModelConfig: the single source of truth for an architecture.

Every family in the zoo is a *value* of this class (litgpt's "config as data"):
named models are derived with `dataclasses.replace`, and every behavioural
difference between families is an explicit field, never a check on a name.
Unknown or contradictory fields fail at construction with a message naming them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from llmzoo.errors import ConfigError

ARCHS = ("decoder", "encoder", "encoder_decoder")
POSITIONS = ("learned", "sinusoidal", "rope", "alibi", "relative_bias", "xl_relative", "none")
NORMS = ("layernorm", "rmsnorm")
NORM_PLACEMENTS = ("pre", "post")
ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "silu", "swish", "quick_gelu")
ROPE_SCALINGS = ("linear", "dynamic", "ntk", "llama3", "yarn")
LAYER_KINDS = ("global", "local")
ATTENTION_TYPES = ("standard", "disentangled", "two_stream")
POOLER_ACTIVATIONS = ("tanh", *ACTIVATIONS)
DEEPNORMS = ("deepnet", "glm130b")  # DeepNorm's alpha/beta rules (ModelConfig.deepnorm)
MIXERS = ("attention", "mamba", "none")  # a layer's token mixer (per-layer spec: ModelConfig.mixers)
FFNS = ("dense", "moe", "rre", "none")  # a layer's feed-forward (ModelConfig.ffns; rre: PanGu-Sigma's, llmzoo.nn.rre)
MOE_KINDS = ("topk", "switch")  # how a MoE layer routes (ModelConfig.moe_kind; llmzoo.nn.moe)
CROSS_KINDS = ("none", "chunked", "gated")  # a decoder layer's cross-attention to a memory (ModelConfig.cross_attentions)
XATTN_GATES = ("scalar", "vector")  # Flamingo's tanh gates: one per sub-layer (the paper) or per channel (IDEFICS)


@dataclass(frozen=True)
class RopeScaling:
    """How RoPE frequencies are stretched for contexts longer than pretraining.

    linear: Chen et al. 2023 "position interpolation" (positions / factor).
    dynamic: NTK-aware base growth once the sequence exceeds the original length (as in transformers).
    ntk: static NTK-aware base scaling base * factor^(d/(d-2)) (bloc97, 2023).
    llama3: Llama 3.1's piecewise wavelength-dependent interpolation.
    yarn: Peng et al. 2023 (NTK-by-parts + attention temperature).
    """

    kind: str
    factor: float = 1.0
    original_max_seq_len: int | None = None
    low_freq_factor: float = 1.0  # llama3
    high_freq_factor: float = 4.0  # llama3
    beta_fast: float = 32.0  # yarn
    beta_slow: float = 1.0  # yarn

    def __post_init__(self) -> None:
        if self.kind not in ROPE_SCALINGS:
            raise ConfigError(f"rope_scaling kind {self.kind!r} is not one of {ROPE_SCALINGS}")
        if self.factor <= 0:
            raise ConfigError(f"rope_scaling factor must be > 0, got {self.factor}")
        if self.kind in ("llama3", "yarn") and not self.original_max_seq_len:
            raise ConfigError(f"rope_scaling {self.kind!r} needs original_max_seq_len")


def rope_scaling_from_dict(data: dict[str, Any]) -> RopeScaling:
    """A RopeScaling from a mapping ({kind: linear, factor: 4}); unknown keys name the valid ones."""
    valid = [f.name for f in fields(RopeScaling)]
    unknown = sorted(set(map(str, data)) - set(valid))
    if unknown or "kind" not in data:
        problem = f"unknown key(s) {unknown}" if unknown else "no 'kind'"
        raise ConfigError(f"rope_scaling has {problem}; its keys are {', '.join(valid)} (kind one of {ROPE_SCALINGS})")
    return RopeScaling(**data)


@dataclass(frozen=True)
class ModelConfig:
    # --- identity -------------------------------------------------------------------------
    name: str = "custom"
    family: str = "custom"
    arch: str = "decoder"  # decoder | encoder | encoder_decoder
    head: str = "lm"  # which output head build_model attaches (lm, none, mlm, pretraining, ...)

    # --- sizes ----------------------------------------------------------------------------
    vocab_size: int = 32000
    d_model: int = 512
    n_layers: int = 8
    n_heads: int = 8
    n_kv_heads: int | None = None  # None: = n_heads (MHA); 1: MQA (Shazeer 2019); else GQA (Ainslie 2023)
    head_dim: int | None = None  # None: d_model // n_heads
    d_ff: int = 2048
    max_seq_len: int = 2048
    n_decoder_layers: int | None = None  # encoder-decoder only; None: = n_layers

    # --- embeddings -------------------------------------------------------------------------
    tie_embeddings: bool = True
    embed_scale: float | None = None  # multiply token embeddings (Gemma: sqrt(d_model))
    embed_norm: bool = False  # LayerNorm right after the embeddings (BLOOM)
    embed_dim: int | None = None  # factorised embeddings V x E then E x H (ALBERT); None: = d_model
    type_vocab_size: int = 0  # token-type (segment) embeddings (BERT)
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None

    # --- positions --------------------------------------------------------------------------
    position: str = "rope"
    position_offset: int = 0  # learned table index offset (OPT, BART: 2; RoBERTa: pad_id + 1)
    rope_base: float = 10000.0
    rope_fraction: float = 1.0  # fraction of head_dim rotated (GPT-NeoX/Pythia: 0.25)
    rope_interleaved: bool = False  # rotate pairs (2i, 2i+1) as GPT-J/CodeGen, not halves as NeoX/LLaMA
    rope_scaling: RopeScaling | None = None
    alibi_max_bias: float = 8.0  # Press et al. 2022: slopes 2^(-8 i / n)
    alibi_scaled: bool = False  # bias added before the 1/sqrt(d) score scaling, so scaled too (Falcon-RW)
    relative_buckets: int = 32  # T5 relative position bias
    relative_max_distance: int = 128
    # Transformer-XL (Dai et al. 2019, position='xl_relative'): hidden states of the last mem_len tokens kept
    # per layer (segment-level recurrence, `model(ids, mems=...)` returns `out.mems`); 0: no memory
    mem_len: int = 0

    # --- attention --------------------------------------------------------------------------
    attn_scale: float | None = None  # None: 1/sqrt(head_dim); GPT-Neo uses 1.0 (no scaling)
    # Layer i's scores also divided by i + 1 (GPT-2's scale_attn_by_inverse_layer_idx, used by the
    # Stanford CRFM / Mistral GPT-2 runs to keep deep layers' fp16 scores in range)
    attn_scale_inverse_layer: bool = False
    qkv_bias: bool = False
    attn_out_bias: bool = False
    sliding_window: int | None = None  # keys with q - k < window are visible (Mistral, GPT-Neo local)
    layer_pattern: tuple[str, ...] | None = None  # cycled per layer: ("global", "local") = GPT-Neo
    attn_logit_softcap: float | None = None  # tanh soft-capping of scores (Gemma 2)
    attn_dropout: float = 0.0

    # --- feed-forward -----------------------------------------------------------------------
    activation: str = "silu"
    mlp_gated: bool = True  # GLU variants (Shazeer 2020): SwiGLU / GEGLU / ReGLU by activation
    mlp_bias: bool = False
    n_experts: int = 0  # > 0: sparse MoE feed-forward (Switch, GLaM, Mixtral)
    n_experts_per_token: int = 2
    moe_renormalize: bool = True  # renormalise the top-k router weights (Mixtral)
    moe_aux_loss_coef: float = 0.01  # Switch Transformer load-balancing loss weight
    # The MoE layers' router kind: "topk" (Shazeer 2017 softmax top-k gating; GLaM, Mixtral: load balance
    # over all tokens) or "switch" (Fedus et al. 2021: top-1, weighted by its probability, router in fp32,
    # load balance per sequence as Mesh TensorFlow / transformers' SwitchTransformers).
    moe_kind: str = "topk"
    # Expert capacity per sequence: ceil(factor * top_k * T / n_experts) tokens (Switch eq. 3), or a fixed
    # number (transformers' expert_capacity); tokens over it are dropped, carried by the residual alone.
    # Both None: no capacity, no token dropped (Mixtral).
    moe_capacity_factor: float | None = None
    moe_expert_capacity: int | None = None
    moe_z_loss_coef: float = 0.0  # router z-loss weight (ST-MoE, Zoph et al. 2022: mean logsumexp(logits)^2)
    moe_jitter: float = 0.0  # Switch: router input x Uniform(1 - j, 1 + j) while training
    moe_router_bias: bool = False
    # The experts' MLP: gated (GLU) or not; None: as the dense layers (mlp_gated). GLaM (Du et al. 2022) gates
    # its dense feed-forwards (GEGLU) but not its experts.
    moe_expert_gated: bool | None = None
    # PanGu-Sigma's Random Routed Experts (Ren et al. 2023, llmzoo.nn.rre), ffns entry "rre": a layer's n_experts
    # are rre_domains groups of n_experts / rre_domains; a token goes to one expert of its domain's group, picked by
    # a fixed random map of its token id (seeded by rre_seed and the layer; no router). rre_first_domain: the
    # global index of this model's first group (a sub-model extracted for domain d has rre_domains=1 and d here).
    rre_domains: int = 1
    rre_seed: int = 0
    rre_first_domain: int = 0

    # --- per-layer spec: which parts each layer has ------------------------------------------
    # Both are cycled over the layers like layer_pattern, so a pattern is one short tuple:
    # ffns=("dense", "moe") is "MoE every other layer" (GLaM), mixers=("mamba",) * 3 + ("attention",)
    # "one attention layer in four"; a tuple of n_layers entries spells every layer out. None: every
    # layer is attention + (MoE if n_experts else dense), the transformer of every family before these.
    mixers: tuple[str, ...] | None = None  # "attention" | "mamba" (Gu & Dao 2023) | "none"
    ffns: tuple[str, ...] | None = None  # "dense" | "moe" | "none" (Mamba's blocks are mixer-only)
    # Mamba's selective SSM (llmzoo.nn.mamba): inner width ssm_expand * d_model, state size N,
    # depthwise causal conv of ssm_conv_kernel taps, dt projected through a rank-ssm_dt_rank bottleneck
    ssm_state_size: int = 16
    ssm_expand: int = 2
    ssm_conv_kernel: int = 4
    ssm_dt_rank: int | None = None  # None: ceil(d_model / 16), the paper's and transformers' "auto"
    ssm_conv_bias: bool = True
    ssm_proj_bias: bool = False  # biases of in_proj / out_proj
    ssm_inner_norms: bool = False  # RMSNorm on dt, B and C before the scan (Jamba, Lieber et al. 2024)
    # RETRO's chunked cross-attention (Borgeaud et al. 2022, section 2.4; llmzoo.nn.chunked_cross_attention):
    # "chunked" layers read retrieved neighbours of cca_chunk-token chunks, encoded cca_memory_dim wide
    # (None: d_model), between attention and feed-forward. Cycled like mixers; None: no such layer.
    # Flamingo's GATED XATTN-DENSE (Alayrac et al. 2022, section 2.2; llmzoo.nn.gated_cross_attention): a
    # "gated" layer runs tanh-gated cross-attention to visual tokens cca_memory_dim wide, then a gated FFW,
    # before its block; heads and d_ff default to the LM's.
    cross_attentions: tuple[str, ...] | None = None
    cca_chunk: int = 64
    cca_memory_dim: int | None = None  # the memory's width, for either kind (None: d_model)
    xattn_heads: int | None = None
    xattn_d_ff: int | None = None
    xattn_gate: str = "scalar"
    xattn_qk_norm: bool = False  # per-head q/k norms (IDEFICS' qk_layer_norms)

    # --- norms and residuals ------------------------------------------------------------------
    norm: str = "rmsnorm"
    norm_eps: float = 1e-5
    norm_bias: bool = True  # LayerNorm with a bias (False: MPT, OLMo)
    norm_unit_offset: bool = False  # RMSNorm weight stored as w - 1 (Gemma)
    norm_placement: str = "pre"  # pre (GPT-2 onward) or post (original Transformer, BERT)
    final_norm: bool = True  # a norm after the last block (pre-norm stacks)
    parallel_residual: bool = False  # x + attn(ln(x)) + mlp(ln(x)) (GPT-J, NeoX, PaLM, Falcon)
    parallel_norms: int = 1  # parallel residual: 1 shared norm (GPT-J, Falcon-7B) or 2 (NeoX, Falcon-40B)
    dropout: float = 0.0  # residual and embedding dropout
    # DeepNorm (Wang et al. 2022, DeepNet): post-LN with the residual up-weighted, x = LN(alpha * x + f(x)),
    # and ffn / v_proj / out_proj initialised Xavier-normal with gain beta (llmzoo.nn.deepnorm). A rule on
    # the depth N = n_layers, not numbers, so a config derived with another depth keeps it right:
    # "deepnet": DeepNet's decoder-/encoder-only alpha = (2N)^(1/4), beta = (8N)^(-1/4);
    # "glm130b": GLM-130B's alpha = (2N)^(1/2), beta = (2N)^(-1/2) (Zeng et al. 2022, section 2.1).
    deepnorm: str | None = None
    # GLM-130B's embedding gradient shrink (Zeng et al. 2022, section 3): emb * a + emb.detach() * (1 - a),
    # the embeddings' forward value unchanged and their gradient scaled by a (0.1 there), against loss spikes.
    embed_grad_scale: float | None = None

    # --- output -------------------------------------------------------------------------------
    lm_head_bias: bool = False  # (GPT-J, CodeGen)
    logit_scale: float | None = None  # multiply final logits by this number
    # Multiply final logits by d_model**-0.5, whatever d_model is: T5 v1.0's tied head (Mesh TensorFlow
    # rescales the decoder output before the shared embedding; Raffel et al. 2020). A rule, not a number,
    # so a config derived with another d_model (a recipe's `model.d_model: 64`) stays a T5.
    logit_scale_rsqrt_d: bool = False

    # PanGu-alpha (Zeng et al. 2021): one more layer after the final norm whose attention query is a learned
    # embedding of the position, not the hidden state (llmzoo.nn.query_layer); not counted in n_layers
    # (PanGu-alpha's own num_layers counts it: its 64 layers are n_layers=63 and this one).
    top_query_layer: bool = False

    # --- sharing ------------------------------------------------------------------------------
    share_layers: bool = False  # one set of block weights reused by every layer (ALBERT)

    # --- family-specific extras, validated by the family that uses them -----------------------
    extra: tuple[tuple[str, Any], ...] = field(default=())

    # --- encoder / encoder-decoder ---------------------------------------------------------------
    attention_type: str = "standard"  # standard | disentangled (DeBERTa) | two_stream (XLNet)
    pooler: str | None = None  # first-token pooler activation ("tanh": BERT; "gelu": ELECTRA/DeBERTa classifiers)
    head_activation: str | None = None  # activation inside MLM/RTD head transforms; None: = activation
    n_labels: int = 2  # outputs of the seq_cls / token_cls heads
    positions_skip_padding: bool = False  # RoBERTa: positions count non-pad tokens; pads get index pad_id
    decoder_start_token_id: int | None = None  # first decoder token (T5: pad, BART: eos)
    position_2d: bool = False  # GLM: a second learned table for the position inside a blank span

    # ------------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(f"{self.name}: {msg}")

        if isinstance(self.rope_scaling, dict):  # config.replace(rope_scaling={...}), a recipe's model.rope_scaling
            object.__setattr__(self, "rope_scaling", rope_scaling_from_dict(self.rope_scaling))

        need(self.arch in ARCHS, f"arch {self.arch!r} is not one of {ARCHS}")
        need(self.position in POSITIONS, f"position {self.position!r} is not one of {POSITIONS}")
        need(self.norm in NORMS, f"norm {self.norm!r} is not one of {NORMS}")
        need(self.norm_placement in NORM_PLACEMENTS, f"norm_placement {self.norm_placement!r} is not one of {NORM_PLACEMENTS}")
        need(self.activation in ACTIVATIONS, f"activation {self.activation!r} is not one of {ACTIVATIONS}")
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "max_seq_len"):
            need(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}")
        need(self.head_dim is not None or self.d_model % self.n_heads == 0,
             f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; set head_dim explicitly")
        need(self.n_heads % self.kv_heads == 0,
             f"n_heads={self.n_heads} must be a multiple of n_kv_heads={self.kv_heads}")
        need(0.0 < self.rope_fraction <= 1.0, f"rope_fraction must be in (0, 1], got {self.rope_fraction}")
        need(self.rotary_dim % 2 == 0, f"rotary dim {self.rotary_dim} (head_dim * rope_fraction) must be even")
        need(self.rope_scaling is None or self.position == "rope", "rope_scaling is set but position is not 'rope'")
        need(self.parallel_norms in (1, 2), f"parallel_norms must be 1 or 2, got {self.parallel_norms}")
        need(not (self.parallel_residual and self.norm_placement == "post"),
             "parallel_residual needs norm_placement='pre' (post-norm parallel blocks are not defined)")
        if self.layer_pattern is not None:
            need(len(self.layer_pattern) > 0, "layer_pattern must not be empty")
            bad = [k for k in self.layer_pattern if k not in LAYER_KINDS]
            need(not bad, f"layer_pattern kinds {bad} are not in {LAYER_KINDS}")
            need("local" not in self.layer_pattern or self.sliding_window is not None,
                 "layer_pattern has 'local' layers but sliding_window is not set")
        if self.sliding_window is not None and self.sliding_window <= 0:
            # The band of every 'local' layer (GPT-Neo, GPT-3's locally banded sparse attention): name the first.
            local = [i for i in range(self.n_layers) if self.layer_kind(i) == "local"]
            need(False, (f"layer {local[0]}: local (banded) attention needs sliding_window > 0 keys, "
                         if local else "sliding_window must be > 0, ") + f"got sliding_window={self.sliding_window}")
        if self.n_experts and self.ffns is None:  # with a per-layer spec, checked per MoE layer below
            need(1 <= self.n_experts_per_token <= self.n_experts,
                 f"n_experts_per_token={self.n_experts_per_token} must be in [1, n_experts={self.n_experts}]")
        self._check_layer_spec(need)
        if self.deepnorm is not None:
            need(self.deepnorm in DEEPNORMS, f"deepnorm {self.deepnorm!r} is not one of {DEEPNORMS}")
            need(self.norm_placement == "post" and not self.parallel_residual,
                 f"deepnorm {self.deepnorm!r} scales a post-LN residual; it needs norm_placement='post' "
                 f"(got {self.norm_placement!r}) and parallel_residual=False")
            need(self.arch in ("decoder", "encoder"),
                 f"deepnorm {self.deepnorm!r} has decoder-/encoder-only constants; arch {self.arch!r} is not one")
        need(not self.top_query_layer or self.arch == "decoder",
             f"top_query_layer (PanGu-alpha) is built for arch='decoder', not {self.arch!r}")
        if self.embed_grad_scale is not None:
            need(0.0 < self.embed_grad_scale <= 1.0,
                 f"embed_grad_scale must be in (0, 1] (GLM-130B: 0.1), got {self.embed_grad_scale}")
            need(self.arch == "decoder", f"embed_grad_scale is built for arch='decoder', not {self.arch!r}")
        need(self.type_vocab_size >= 0, "type_vocab_size must be >= 0")
        need(self.arch == "encoder_decoder" or self.n_decoder_layers is None,
             "n_decoder_layers is only meaningful for arch='encoder_decoder'")
        if self.position == "learned":
            need(self.max_seq_len + self.position_offset > 0, "learned positions need max_seq_len > 0")
        need(not self.alibi_scaled or self.position == "alibi", "alibi_scaled is set but position is not 'alibi'")
        need(self.mem_len >= 0, f"mem_len must be >= 0, got {self.mem_len}")
        need(self.mem_len == 0 or self.position == "xl_relative",
             f"mem_len={self.mem_len} is Transformer-XL's recurrence memory; it needs position='xl_relative', "
             f"not {self.position!r}")
        need(self.position != "xl_relative" or (self.arch == "decoder" and not self.share_layers
                                                  and self.attention_type == "standard"),
             "position='xl_relative' (Transformer-XL) is built for arch='decoder' with standard, unshared attention layers")
        need(self.attention_type in ATTENTION_TYPES,
             f"attention_type {self.attention_type!r} is not one of {ATTENTION_TYPES}")
        need(self.pooler is None or self.pooler in POOLER_ACTIVATIONS,
             f"pooler {self.pooler!r} is not one of {POOLER_ACTIVATIONS}")
        need(self.head_activation is None or self.head_activation in ACTIVATIONS,
             f"head_activation {self.head_activation!r} is not one of {ACTIVATIONS}")
        need(self.n_labels > 0, f"n_labels must be > 0, got {self.n_labels}")
        need(self.attention_type == "standard" or self.arch == "encoder",
             f"attention_type {self.attention_type!r} is only built for arch='encoder'")
        need(self.logit_scale is None or not self.logit_scale_rsqrt_d,
             f"logit_scale={self.logit_scale} and logit_scale_rsqrt_d=True both scale the logits; set one")
        need(not self.position_2d or (self.arch == "decoder" and self.position == "learned"),
             "position_2d (GLM) needs arch='decoder' and position='learned'")

    def _check_layer_spec(self, need) -> None:
        """Each layer's parts make sense: a ConfigError names the first layer and field that does not."""
        for name, kinds in (("mixers", MIXERS), ("ffns", FFNS), ("cross_attentions", CROSS_KINDS)):
            spec = getattr(self, name)
            if isinstance(spec, (str, list)):  # a recipe's `mixers: [mamba]`, or one kind for every layer
                spec = (spec,) if isinstance(spec, str) else tuple(spec)
                object.__setattr__(self, name, spec)
            if spec is None:
                continue
            need(len(spec) > 0, f"{name} must not be empty (leave it unset for the default)")
            for i in range(self.n_layers):
                kind = spec[i % len(spec)]
                need(kind in kinds, f"layer {i}: {name} entry {kind!r} is not one of {kinds}")
        for i in range(self.n_layers):
            if self.ffn_kind(i) == "moe":
                need(self.n_experts > 0, f"layer {i}: ffns says 'moe' but n_experts=0; set n_experts")
                need(1 <= self.n_experts_per_token <= self.n_experts,
                     f"layer {i}: MoE top-k n_experts_per_token={self.n_experts_per_token} must be in "
                     f"[1, n_experts={self.n_experts}]")
                self._check_moe(i, need)
            if self.ffn_kind(i) == "rre":
                self._check_rre(i, need)
            if self.mixer_kind(i) != "attention":
                need(self.arch == "decoder", f"layer {i}: mixer {self.mixer_kind(i)!r} is only built for arch='decoder'")
            if self.mixer_kind(i) != "attention" or self.ffn_kind(i) == "none":
                need(not self.parallel_residual and self.norm_placement == "pre",
                     f"layer {i}: mixer {self.mixer_kind(i)!r} with ffn {self.ffn_kind(i)!r} needs a sequential "
                     f"pre-norm block (parallel_residual=False, norm_placement='pre')")
            need(self.mixer_kind(i) != "none" or self.ffn_kind(i) != "none",
                 f"layer {i}: mixers and ffns are both 'none'; the layer would do nothing")
        if self.cross_attentions is not None and "chunked" in self.cross_attentions:
            need(self.arch == "decoder" and self.norm_placement == "pre" and not self.parallel_residual
                 and not self.share_layers, "chunked cross-attention (RETRO) needs a sequential pre-norm decoder "
                 "with a block per layer (arch='decoder', norm_placement='pre', no parallel_residual/share_layers)")
            need(self.cca_chunk > 0, f"cca_chunk must be > 0, got {self.cca_chunk}")
        gated = [i for i in range(self.n_layers) if self.cross_kind(i) == "gated"]
        if gated:
            self._check_gated(gated[0], need)
        need(not (self.attn_scale_inverse_layer and self.share_layers),
             "attn_scale_inverse_layer scales each layer by its own index; it cannot be used with share_layers")
        if self.has_mixer("mamba"):
            for name in ("ssm_state_size", "ssm_expand"):
                need(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}")
            need(self.ssm_conv_kernel > 1, f"ssm_conv_kernel must be > 1, got {self.ssm_conv_kernel}")
            need(self.ssm_dt_rank is None or self.ssm_dt_rank > 0, f"ssm_dt_rank must be > 0, got {self.ssm_dt_rank}")
            need(not self.share_layers, "share_layers with Mamba layers is not supported")

    def _check_gated(self, i: int, need) -> None:
        """Flamingo's gated cross-attention, named by its first layer i."""
        need(self.arch == "decoder" and not self.share_layers, f"layer {i}: cross_attentions 'gated' (Flamingo) "
             f"needs a decoder with a block per layer, got arch={self.arch!r}, share_layers={self.share_layers}")
        need(self.xattn_gate in XATTN_GATES, f"layer {i}: xattn_gate {self.xattn_gate!r} is not one of {XATTN_GATES}")
        for name in ("xattn_heads", "xattn_d_ff", "cca_memory_dim"):
            value = getattr(self, name)
            need(value is None or value > 0, f"layer {i}: {name} must be > 0, got {value}")
        heads = self.xattn_heads or self.n_heads
        need(self.d_model % heads == 0, f"layer {i}: xattn_heads={heads} must divide d_model={self.d_model}")

    def _check_moe(self, i: int, need) -> None:
        """MoE layer i's router options (llmzoo.nn.moe)."""
        need(self.moe_kind in MOE_KINDS, f"layer {i}: moe_kind {self.moe_kind!r} is not one of {MOE_KINDS}")
        if self.moe_kind == "switch":
            need(self.n_experts_per_token == 1,
                 f"layer {i}: moe_kind 'switch' routes each token to one expert; set n_experts_per_token=1, "
                 f"not {self.n_experts_per_token} (top-k routing is moe_kind 'topk')")
            need(not self.moe_renormalize, f"layer {i}: moe_kind 'switch' weights the expert by its router "
                                           f"probability; set moe_renormalize=False")
        need(self.moe_capacity_factor is None or self.moe_capacity_factor > 0,
             f"layer {i}: moe_capacity_factor must be > 0, got {self.moe_capacity_factor}")
        need(self.moe_expert_capacity is None or self.moe_expert_capacity > 0,
             f"layer {i}: moe_expert_capacity must be > 0, got {self.moe_expert_capacity}")
        need(self.moe_capacity_factor is None or self.moe_expert_capacity is None,
             f"layer {i}: set moe_capacity_factor or moe_expert_capacity, not both")
        need(0.0 <= self.moe_jitter < 1.0, f"layer {i}: moe_jitter must be in [0, 1), got {self.moe_jitter}")
        need(self.moe_z_loss_coef >= 0.0, f"layer {i}: moe_z_loss_coef must be >= 0, got {self.moe_z_loss_coef}")

    def _check_rre(self, i: int, need) -> None:
        """Random Routed Experts layer i (llmzoo.nn.rre): the experts split evenly into the domain groups."""
        need(self.n_experts > 0, f"layer {i}: ffns says 'rre' but n_experts=0; set n_experts (all domains' experts)")
        need(self.rre_domains >= 1, f"layer {i}: rre_domains must be >= 1, got {self.rre_domains}")
        need(self.n_experts % self.rre_domains == 0,
             f"layer {i}: rre_domains={self.rre_domains} does not divide n_experts={self.n_experts}; each domain "
             f"owns an equal group of experts")
        need(self.rre_first_domain >= 0, f"layer {i}: rre_first_domain must be >= 0, got {self.rre_first_domain}")
        need(self.arch == "decoder" and not self.share_layers,
             f"layer {i}: ffn 'rre' routes by token id and is built for arch='decoder' without share_layers")

    # --- derived ------------------------------------------------------------------------------
    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads if self.n_kv_heads is not None else self.n_heads

    @property
    def hd(self) -> int:
        """Resolved per-head dimension."""
        return self.head_dim if self.head_dim is not None else self.d_model // self.n_heads

    @property
    def rotary_dim(self) -> int:
        return int(self.hd * self.rope_fraction)

    @property
    def decoder_layers(self) -> int:
        return self.n_decoder_layers if self.n_decoder_layers is not None else self.n_layers

    @property
    def emb_dim(self) -> int:
        return self.embed_dim if self.embed_dim is not None else self.d_model

    @property
    def deepnorm_alpha(self) -> float:
        """What a post-LN block multiplies its residual by (1.0 without DeepNorm)."""
        N = self.n_layers
        return {"deepnet": (2 * N) ** 0.25, "glm130b": (2 * N) ** 0.5}.get(self.deepnorm, 1.0)

    @property
    def deepnorm_beta(self) -> float:
        """DeepNorm's init gain for ffn, v_proj and out_proj (1.0 without DeepNorm)."""
        N = self.n_layers
        return {"deepnet": (8 * N) ** -0.25, "glm130b": (2 * N) ** -0.5}.get(self.deepnorm, 1.0)

    @property
    def logit_multiplier(self) -> float | None:
        """What the LM head's logits are multiplied by (None: nothing)."""
        return self.d_model**-0.5 if self.logit_scale_rsqrt_d else self.logit_scale

    def layer_kind(self, i: int) -> str:
        """'global' or 'local' (sliding window) attention for layer i."""
        if self.layer_pattern is not None:
            return self.layer_pattern[i % len(self.layer_pattern)]
        return "local" if self.sliding_window is not None else "global"

    def mixer_kind(self, i: int) -> str:
        """Layer i's token mixer: 'attention', 'mamba' or 'none'."""
        return self.mixers[i % len(self.mixers)] if self.mixers else "attention"

    def ffn_kind(self, i: int) -> str:
        """Layer i's feed-forward: 'dense', 'moe', 'rre' or 'none'."""
        if self.ffns:
            return self.ffns[i % len(self.ffns)]
        return "moe" if self.n_experts else "dense"

    def cross_kind(self, i: int) -> str:
        """Layer i's cross-attention: 'chunked' (RETRO's CCA), 'gated' (Flamingo's) or 'none'."""
        return self.cross_attentions[i % len(self.cross_attentions)] if self.cross_attentions else "none"

    def has_mixer(self, kind: str) -> bool:
        return any(self.mixer_kind(i) == kind for i in range(self.n_layers))

    @property
    def expert_mlp_gated(self) -> bool:
        """Whether the MoE experts' MLPs are gated (GLU)."""
        return self.mlp_gated if self.moe_expert_gated is None else self.moe_expert_gated

    @property
    def ssm_inner(self) -> int:
        """Mamba's inner (expanded) width."""
        return self.ssm_expand * self.d_model

    @property
    def ssm_rank(self) -> int:
        return self.ssm_dt_rank if self.ssm_dt_rank is not None else -(-self.d_model // 16)

    def get_extra(self, key: str, default: Any = None) -> Any:
        return dict(self.extra).get(key, default)

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    # --- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, RopeScaling):
                value = dataclasses.asdict(value)
            elif f.name == "extra":
                value = {k: v for k, v in value}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown ModelConfig field(s) {unknown}; known fields are listed in llmzoo/config.py")
        data = dict(data)
        if data.get("rope_scaling") is not None:
            if isinstance(data["rope_scaling"], dict):
                data["rope_scaling"] = rope_scaling_from_dict(data["rope_scaling"])
        for name in ("layer_pattern", "mixers", "ffns", "cross_attentions"):
            if isinstance(data.get(name), list):
                data[name] = tuple(data[name])
        if "extra" in data:
            extra = data["extra"]
            data["extra"] = tuple(sorted(extra.items())) if isinstance(extra, dict) else tuple(map(tuple, extra))
        try:
            return cls(**data)
        except TypeError as e:  # wrong types surface as TypeError inside validation
            raise ConfigError(f"invalid ModelConfig: {e}") from None

    def to_json(self, path: str | Path | None = None) -> str:
        return config_json(self.to_dict(), path)

    @classmethod
    def from_json(cls, path_or_text: str | Path) -> "ModelConfig":
        text = str(path_or_text)
        if not text.lstrip().startswith("{"):
            try:
                text = Path(path_or_text).read_text()
            except OSError as e:
                raise ConfigError(f"cannot read config {path_or_text}: {e.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"config is not valid JSON ({e.msg} at line {e.lineno})") from None
        return cls.from_dict(data)


def config_json(data: dict[str, Any], path: str | Path | None = None) -> str:
    """A config's dict as indented JSON, also written to `path` if given (ModelConfig and the
    composite configs, RETRO's and Flamingo's, write their config.json the same way)."""
    text = json.dumps(data, indent=2, sort_keys=False)
    if path is not None:
        Path(path).write_text(text + "\n")
    return text
