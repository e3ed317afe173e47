"""RETRO, the Retrieval-Enhanced Transformer (Borgeaud et al. 2022, section 2 and figure 2).

    neighbours (B, L, k, r): for each of the L chunks of m tokens, k retrieved token spans (chunk and
    continuation, r = 2m) from a frozen database (llmzoo.retro)
    decoder: a DecoderLM whose layers in P (every 3rd from layer 6) hold chunked cross-attention
    encoder: a small bidirectional transformer over each neighbour, cross-attending to its chunk's
    hidden states; run once, at the first CCA layer (the paper's "if p = min(P)")

The decoder keeps its structure and parameter names: the CCA layers are part of its Blocks (the per-layer
spec, config.cross_attentions), and `Retro.forward` hands them this forward's neighbours through forward
pre-hooks. Without neighbours (or called as `model.decoder(ids)`) every CCA layer is skipped and the
model computes the plain decoder. Cached decoding is not implemented (the paper's sampling re-retrieves
every m tokens; a generation loop here would re-run the whole prefix).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.errors import LlmzooError
from llmzoo.models.decoder import DecoderLM
from llmzoo.models.outputs import ModelOutput
from llmzoo.models.retro_config import RetroConfig
from llmzoo.nn.block import Block
from llmzoo.nn.norm import make_norm


def build_retro(config: RetroConfig, *, device: str | torch.device | None = None) -> "Retro":
    """A RETRO model with build_model's init (N(0, 0.02) weights); device='meta' builds without memory."""
    from llmzoo.models.build import _no_init, init_weights

    with torch.device(device) if device is not None else contextlib.nullcontext(), \
            _no_init() if str(device) == "meta" else contextlib.nullcontext():
        model = Retro(config)
    if str(device) != "meta":
        init_weights(model, config.decoder)
    return model


class NeighbourEncoder(nn.Module):
    """Encodes Ret(C_u) conditioned on H_u (section 2.4: "bi-directional transformer encoder, conditioned on
    the activations of C_u through cross-attention layers"). Positions: a learned table of r (the paper
    uses relative encodings here too)."""

    def __init__(self, config: ModelConfig, decoder: ModelConfig) -> None:
        """config: the encoder's (width, layers, max_seq_len = r); decoder: the decoder's (width, chunk, norm)."""
        super().__init__()
        self.chunk = decoder.cca_chunk
        self.tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.positions = nn.Embedding(config.max_seq_len, config.d_model)
        # The chunk's states are the decoder's residual stream: normed as the decoder's sub-layers norm
        # their inputs, then brought to the encoder's width once for every cross-attention layer.
        self.chunk_norm = make_norm(decoder)
        self.chunk_proj = nn.Linear(decoder.d_model, config.d_model, bias=False)
        self.layers = nn.ModuleList(Block(config, i, cross_attention=True) for i in range(config.n_layers))
        self.norm = make_norm(config)

    def forward(self, neighbours: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """neighbours (B, L, k, r) token ids; h (B, T >= L*m, D) the decoder's states -> (B, L, k, r, d)."""
        B, L, k, r = neighbours.shape
        m = self.chunk
        chunks = self.chunk_proj(self.chunk_norm(h[:, : L * m])).view(B, L, 1, m, -1)  # H_u, (B, L, 1, m, d)
        memory = chunks.expand(B, L, k, m, chunks.shape[-1]).reshape(B * L * k, m, -1)
        x = self.tokens(neighbours.reshape(B * L * k, r)) + self.positions(torch.arange(r, device=h.device))
        for block in self.layers:
            x, _ = block(x, memory=memory)  # no mask: bidirectional over the neighbour, all of H_u
        return self.norm(x).view(B, L, k, r, -1)


class Retrieval:
    """One forward's neighbours, encoded on the first request (at the first CCA layer) and reused after."""

    def __init__(self, encoder: NeighbourEncoder, neighbours: torch.Tensor) -> None:
        self.encoder, self.neighbours, self._encoded = encoder, neighbours, None

    def encoded(self, h: torch.Tensor) -> torch.Tensor:
        if self._encoded is None:
            self._encoded = self.encoder(self.neighbours, h)
        return self._encoded


class Retro(nn.Module):
    def __init__(self, config: RetroConfig) -> None:
        super().__init__()
        self.config = config
        self.decoder = DecoderLM(config.decoder)
        self.encoder = NeighbourEncoder(config.encoder, config.decoder)
        self._retrieval: Retrieval | None = None  # set during forward only
        for i in config.cca_layers:
            self.decoder.layers[i].register_forward_pre_hook(self._pass_retrieval, with_kwargs=True)

    def _pass_retrieval(self, block, args, kwargs):
        if self._retrieval is None:  # the decoder called on its own, or no neighbours: the plain decoder
            return None
        return args, {**kwargs, "cross_states": self._retrieval}

    def forward(self, input_ids: torch.Tensor, *, neighbours: torch.Tensor | None = None, cache=None,
                **decoder_kwargs) -> ModelOutput:
        """input_ids (B, T); neighbours (B, L, k, r) token ids for chunks 0..L-1 (L >= T // m; only the
        T // m complete chunks are read). Other arguments (attention_mask, targets, ...) go to the decoder.
        Chunks count from each row's first position: pad rows on the right, not the left."""
        if neighbours is not None:
            self._check(input_ids, neighbours, cache)
            L = input_ids.shape[1] // self.config.chunk
            self._retrieval = Retrieval(self.encoder, neighbours[:, :L]) if L > 0 else None
        try:
            return self.decoder(input_ids, cache=cache, **decoder_kwargs)
        finally:
            self._retrieval = None

    def _check(self, input_ids: torch.Tensor, neighbours: torch.Tensor, cache) -> None:
        B, T = input_ids.shape
        c = self.config
        if cache is not None:
            raise LlmzooError("RETRO with neighbours runs whole sequences; cached decoding is not implemented")
        if neighbours.dim() != 4 or neighbours.shape[0] != B:
            raise LlmzooError(f"neighbours must be (B={B}, chunks, k, r) token ids, got {tuple(neighbours.shape)}")
        if neighbours.shape[1] < T // c.chunk:
            raise LlmzooError(f"{T} tokens make {T // c.chunk} chunks of {c.chunk} but neighbours cover "
                              f"{neighbours.shape[1]}; retrieve for every complete chunk")
        if neighbours.shape[3] > c.neighbour_len:
            raise LlmzooError(f"neighbours of {neighbours.shape[3]} tokens exceed the encoder's {c.neighbour_len}")
