"""Parameter and FLOP counts computed from a ModelConfig, without building the model.

`count_params(config)` mirrors what `build_model(config)` allocates module by module, so the
catalog can list 100B+ models instantly (tests cross-check it against meta-device builds).
FLOPs follow Kaplan et al. 2020 (Table 1): a forward pass costs 2 FLOPs per weight a token
meets plus 2 * n_layers * n_ctx * d_attn for attention scores and their weighted sum (causal
masking halves the full T x T products); training (forward + backward) costs 3x that.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmzoo.config import ModelConfig


def _norm(c: ModelConfig, dim: int) -> int:
    if c.norm == "rmsnorm":
        return dim
    return dim * (2 if c.norm_bias else 1)


def _linear(n_in: int, n_out: int, bias: bool) -> int:
    return n_in * n_out + (n_out if bias else 0)


def attention_params(c: ModelConfig) -> int:
    d, q_dim, kv_dim = c.d_model, c.n_heads * c.hd, c.kv_heads * c.hd
    return (_linear(d, q_dim, c.qkv_bias) + 2 * _linear(d, kv_dim, c.qkv_bias)
            + _linear(q_dim, d, c.attn_out_bias))


def mlp_params(c: ModelConfig, gated: bool | None = None, d_ff: int | None = None) -> int:
    """One MLP; gated: override c.mlp_gated (MoE experts, c.expert_mlp_gated); d_ff: override c.d_ff
    (Flamingo's gated FFW, c.xattn_d_ff)."""
    gated = c.mlp_gated if gated is None else gated
    f = d_ff or c.d_ff
    n = 2 * c.d_model * f + (c.d_model * f if gated else 0)
    if c.mlp_bias:
        n += f * (2 if gated else 1) + c.d_model
    return n


def cross_params(c: ModelConfig, layer: int = 0) -> int:
    """Layer `layer`'s cross-attention of the per-layer spec (c.cross_kind), as its module builds it.
    'chunked': RETRO's CCA (Borgeaud et al. 2022, section 2.4; llmzoo.nn.chunked_cross_attention): its
    pre-norm, q/o over d_model, k/v over the cca_memory_dim-wide neighbour encodings, the relative
    encodings' W_R and per-layer u, v biases. 'gated': Flamingo's GATED XATTN-DENSE (Alayrac et al. 2022,
    section 2.2; llmzoo.nn.gated_cross_attention): two norms, bias-free q/o and k/v over the visual
    width, optional per-head q/k norms, the LM-kind FFW of xattn_d_ff, and two tanh gates."""
    kind = c.cross_kind(layer)
    if kind == "none":
        return 0
    d, mem = c.d_model, c.cca_memory_dim or c.d_model
    if kind == "chunked":
        inner = c.n_heads * c.hd
        return _norm(c, d) + 2 * d * inner + 2 * mem * inner + d * inner + 2 * inner
    heads = c.xattn_heads or c.n_heads
    hd = d // heads
    n = 2 * _norm(c, d) + 2 * d * heads * hd + 2 * mem * heads * hd
    n += 2 * _norm(c, hd) if c.xattn_qk_norm else 0
    gates = 2 * (1 if c.xattn_gate == "scalar" else d)
    return n + mlp_params(c, d_ff=c.xattn_d_ff) + gates


def ssm_params(c: ModelConfig) -> int:
    """One Mamba mixer (llmzoo.nn.mamba): in/out projections, depthwise conv, x_proj to (dt, B, C),
    dt_proj, A_log (D x N) and the D skip."""
    d, D, N, R, K = c.d_model, c.ssm_inner, c.ssm_state_size, c.ssm_rank, c.ssm_conv_kernel
    n = _linear(d, 2 * D, c.ssm_proj_bias) + _linear(D, d, c.ssm_proj_bias) + D * K + (D if c.ssm_conv_bias else 0)
    n += D * (R + 2 * N) + _linear(R, D, True) + D * N + D
    return n + (R + 2 * N if c.ssm_inner_norms else 0)


def ff_params(c: ModelConfig, *, active: bool = False, layer: int = 0) -> int:
    """Feed-forward parameters of block `layer`; with `active`, only the experts a token uses."""
    kind = c.ffn_kind(layer)
    if kind == "none":
        return 0
    if kind == "dense":
        return mlp_params(c)
    if kind == "rre":  # PanGu-Sigma's Random Routed Experts: no router, one expert per token
        return (1 if active else c.n_experts) * mlp_params(c, c.expert_mlp_gated)
    experts = c.n_experts_per_token if active else c.n_experts
    router = _linear(c.d_model, c.n_experts, c.moe_router_bias)
    return router + experts * mlp_params(c, c.expert_mlp_gated)


def block_params(c: ModelConfig, *, cross_attention: bool = False, active: bool = False, layer: int = 0) -> int:
    """Block `layer` as its per-layer spec builds it (llmzoo.nn.block)."""
    mixer = c.mixer_kind(layer)
    n = 0 if mixer == "none" else _norm(c, c.d_model) + (attention_params(c) if mixer == "attention" else ssm_params(c))
    n += ff_params(c, active=active, layer=layer)
    if c.ffn_kind(layer) != "none" and not (c.parallel_residual and c.parallel_norms == 1):
        n += _norm(c, c.d_model)  # the second (mlp) norm
    if cross_attention:
        n += _norm(c, c.d_model) + attention_params(c)
    return n + cross_params(c, layer)


def _projects_tokens(c: ModelConfig) -> bool:
    """A decoder whose embeddings are narrower than d_model (OPT-350m): only the token embeddings are
    projected in, bias-free, and the output is projected back before the head (llmzoo.models.decoder)."""
    return c.arch == "decoder" and c.emb_dim != c.d_model


def embedding_params(c: ModelConfig, *, tokens: bool = True) -> int:
    """One Embeddings module (see llmzoo.nn.embedding): tokens, positions, types, norm, projection."""
    E = c.emb_dim
    P = c.d_model if _projects_tokens(c) else E  # the width positions, types and the norm work in
    n = c.vocab_size * E if tokens else 0
    if c.position == "learned":
        n += (c.max_seq_len + c.position_offset) * P
    n += c.type_vocab_size * P
    if c.embed_norm:
        n += _norm(c, P)
    if E != c.d_model:
        n += _linear(E, c.d_model, not _projects_tokens(c))
    return n


def _relative_position_params(c: ModelConfig) -> int:
    """Relative-position tables, by the stack that owns them."""
    if c.arch == "encoder_decoder":
        # T5 (Raffel et al. 2020): a bias per (bucket, head), one table per stack.
        return 2 * c.relative_buckets * c.n_heads if c.position == "relative_bias" else 0
    if c.arch == "encoder" and c.attention_type == "disentangled":
        # DeBERTa v2/v3 (He et al. 2021): one table of 2 x span relative embeddings (+ LayerNorm) shared by
        # all layers; without share_att_key each layer projects it with its own c2p / p2c matrices.
        span = c.relative_buckets if c.relative_buckets > 0 else c.relative_max_distance
        n = 2 * span * c.d_model + (_norm(c, c.d_model) if c.get_extra("norm_rel_ebd", False) else 0)
        if not c.get_extra("share_att_key", False):
            q_dim = c.n_heads * c.hd
            n += c.n_layers * len(c.get_extra("pos_att_type", ("c2p", "p2c"))) * _linear(c.d_model, q_dim, True)
        return n
    if c.position == "xl_relative":
        # Transformer-XL (Dai et al. 2019): each layer's W_R (d x heads*hd, no bias); u, v shared by all layers.
        return c.n_layers * c.d_model * c.n_heads * c.hd + 2 * c.n_heads * c.hd
    if c.arch == "decoder" and c.position == "relative_bias":
        return c.relative_buckets * c.n_heads  # one causal bucket table shared by all layers
    return 0  # the standard encoder owns no relative table


def _two_stream_extras(c: ModelConfig) -> int:
    """XLNet (Yang et al. 2019) per layer: the relative-position projection W_r and the r_w, r_r, r_s
    biases plus 2 segment embeddings per head; one mask embedding for the query stream."""
    if c.attention_type != "two_stream":
        return 0
    q_dim = c.n_heads * c.hd
    return c.n_layers * (c.d_model * q_dim + 5 * q_dim) + c.d_model


def _head_params(c: ModelConfig) -> int:
    """Output heads as llmzoo.models.decoder / encoder / heads build them (HF's conventions)."""
    d, V, E = c.d_model, c.vocab_size, c.emb_dim
    if c.arch != "encoder":  # decoder / encoder-decoder: the LM head (or none)
        if c.head != "lm":
            return 0
        project_out = d * E if _projects_tokens(c) else 0
        return project_out + (0 if c.tie_embeddings else V * E) + (V if c.lm_head_bias else 0)
    pooler = _linear(d, d, True) if c.pooler is not None else 0
    # encoder heads (llmzoo.models.heads): MLM transform d -> E + norm, then the (tied) E -> V projection
    mlm = _linear(d, E, True) + _norm(c, E) + V + (0 if c.tie_embeddings else V * E)
    lm = (0 if c.tie_embeddings else V * d) + (V if c.lm_head_bias else 0)  # XLNet's LM head
    return pooler + {
        "none": 0, "lm": lm, "mlm": mlm, "pretraining": mlm + _linear(d, 2, True), "nsp": _linear(d, 2, True),
        "seq_cls": _linear(d, c.n_labels, True), "token_cls": _linear(d, c.n_labels, True),
        "qa": _linear(d, 2, True), "rtd": _linear(d, d, True) + _linear(d, 1, True),
    }.get(c.head, 0)


def _top_query_params(c: ModelConfig) -> int:
    """PanGu-alpha's query layer (llmzoo.nn.query_layer): a pre-LN attention + dense MLP layer and its
    max_seq_len x d_model table of query embeddings."""
    if not c.top_query_layer:
        return 0
    return 2 * _norm(c, c.d_model) + attention_params(c) + mlp_params(c) + c.max_seq_len * c.d_model


def count_params(c: ModelConfig, *, active: bool = False) -> int:
    """Unique parameters `build_model(c)` creates (tied weights once). `active`: per-token (MoE)."""
    if c.arch == "encoder_decoder":
        # one token table shared by both stacks (T5, BART); each stack has its own positions,
        # embedding norm and final norm
        n = c.vocab_size * c.d_model + 2 * embedding_params(c, tokens=False)
        n += sum(block_params(c, active=active, layer=i) for i in range(c.n_layers))
        n += sum(block_params(c, cross_attention=True, active=active, layer=i) for i in range(c.decoder_layers))
        n += 2 * _norm(c, c.d_model) if c.final_norm else 0
        return n + _head_params(c) + _relative_position_params(c)
    blocks = 1 if c.share_layers else c.n_layers
    n = embedding_params(c) + sum(block_params(c, active=active, layer=i) for i in range(blocks))
    if c.final_norm and (c.arch == "decoder" or c.norm_placement == "pre"):
        n += _norm(c, c.d_model)  # post-norm encoders (BERT) end normalised already
    return n + _head_params(c) + _relative_position_params(c) + _two_stream_extras(c) + _top_query_params(c)


def matmul_params(c: ModelConfig) -> int:
    """N for FLOPs: the weight matrices one token is multiplied by in a forward pass (Kaplan et al.'s
    non-embedding parameters, without the elementwise norms and biases, plus the output projection,
    which is a V x d matmul whether or not it is tied). Every layer counts, even when ALBERT shares
    them; an MoE token meets its top-k experts and the router."""
    d, q_dim, kv_dim = c.d_model, c.n_heads * c.hd, c.kv_heads * c.hd
    attention = 2 * d * q_dim + 2 * d * kv_dim
    mlp = (3 if c.mlp_gated else 2) * d * c.d_ff
    moe = c.n_experts_per_token * (3 if c.expert_mlp_gated else 2) * d * c.d_ff + d * c.n_experts
    D, N, R = c.ssm_inner, c.ssm_state_size, c.ssm_rank
    ssm = 2 * d * D + D * (R + 2 * N) + R * D + D * d  # in, x, dt, out projections (the scan is elementwise)
    mixers = {"attention": attention, "mamba": ssm, "none": 0}
    rre = (3 if c.expert_mlp_gated else 2) * d * c.d_ff  # one expert, no router
    ffns = {"dense": mlp, "moe": moe, "rre": rre, "none": 0}
    layers = sum(mixers[c.mixer_kind(i)] + ffns[c.ffn_kind(i)] for i in range(c.n_layers))
    layers += (attention + mlp) if c.top_query_layer else 0  # PanGu-alpha's query layer (its table is a lookup)
    layers += sum(_cross_matmuls(c, i) for i in range(c.n_layers))
    if c.arch == "encoder_decoder":
        layers += sum(2 * attention + ffns[c.ffn_kind(i)] for i in range(c.decoder_layers))  # self + cross attention
    E, V = c.emb_dim, c.vocab_size
    project = (2 if _projects_tokens(c) and c.head == "lm" else 1) * E * d if E != d else 0  # in (and out)
    head = {
        "none": 0, "lm": V * E, "mlm": d * E + V * E, "pretraining": d * E + V * E, "rtd": d * d + d,
    }.get(c.head, V * d)
    return layers + project + head


def _cross_matmuls(c: ModelConfig, layer: int) -> int:
    """The weights a text token meets in layer `layer`'s cross-attention (RETRO's CCA, Flamingo's gated layer):
    q and o, and the gated layer's FFW. The k/v projections of the memory and the scores against it are left
    out: how many memory tokens there are per text token (RETRO's k neighbours of r tokens a chunk, Flamingo's
    64 visual tokens an image) is set by the retrieval or the images, not by the ModelConfig."""
    kind = c.cross_kind(layer)
    if kind == "chunked":
        return 2 * c.d_model * c.n_heads * c.hd
    if kind == "gated":
        f = c.xattn_d_ff or c.d_ff
        return 2 * c.d_model * c.d_model + (3 if c.mlp_gated else 2) * c.d_model * f
    return 0


@dataclass(frozen=True)
class FlopsPerToken:
    """FLOPs per token for one sequence length (Kaplan et al. 2020, Table 1)."""

    params: int  # N: matmul weights per token (active experts only)
    attention: int  # 2 * layers * seq * d_attn (forward)
    seq_len: int

    @property
    def forward(self) -> int:
        return 2 * self.params + self.attention

    @property
    def training(self) -> int:
        return 3 * self.forward  # backward = 2x forward (grads w.r.t. inputs and weights)


def attention_flops(c: ModelConfig, seq_len: int) -> int:
    """Forward FLOPs per token of QK^T and softmax(.)V. Under a causal mask a token attends on average
    to seq/2 keys: 2 matmuls x 2 FLOPs x seq/2 x d_attn = 2 * seq * d_attn per layer (Kaplan et al.).
    Sliding-window layers see about `window` keys; bidirectional attention sees all seq keys (x2)."""
    d_attn = c.n_heads * c.hd
    if c.arch == "encoder_decoder":
        # encoder self (bidirectional) + decoder self (causal) + cross-attention over the whole source
        return (4 * c.n_layers + 6 * c.decoder_layers) * seq_len * d_attn
    total = 0
    for i in range(c.n_layers):
        if c.mixer_kind(i) != "attention":
            continue  # an SSM layer's cost per token does not grow with the sequence
        local = c.layer_kind(i) == "local" and c.sliding_window is not None
        keys_x2 = min(seq_len, 2 * c.sliding_window) if local else seq_len  # 2 x the average key count
        total += 2 * keys_x2 * d_attn
        if c.position == "xl_relative":  # Transformer-XL's position terms (b)+(d): q against all seq distances
            total += 2 * seq_len * d_attn
    if c.top_query_layer:  # PanGu-alpha's query layer: one more causal attention over the whole context
        total += 2 * seq_len * d_attn
    return 2 * total if c.arch == "encoder" else total


def flops_per_token(c: ModelConfig, seq_len: int | None = None) -> FlopsPerToken:
    seq = seq_len or c.max_seq_len
    return FlopsPerToken(params=matmul_params(c), attention=attention_flops(c, seq), seq_len=seq)


def training_flops_per_token(n_params: float, n_layers: int = 0, d_model: int = 0, seq_len: int = 0) -> float:
    """6N + 6 * n_layers * seq * d (Kaplan et al. 2020; Hoffmann et al. 2022, App. F):
    the planning rule for when only the parameter count (and optionally the shape) is known."""
    return 6.0 * n_params + 6.0 * n_layers * seq_len * d_model
