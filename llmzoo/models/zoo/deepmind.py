"""DeepMind's language models: the Gopher family, Chinchilla, Sparrow, RETRO. (Flamingo: multimodal.py.)"""

from __future__ import annotations

from llmzoo.config import ModelConfig
from llmzoo.models.retro_config import RetroConfig, retro_layers
from llmzoo.models.zoo.card import ModelCard, sized

# Gopher (Rae et al. 2021): pre-RMSNorm decoder, 32k SentencePiece vocabulary, 2048 context, Transformer-XL
# relative position encodings (Dai et al. 2019; the LLM Zoo lecture notes: lets it run past the training length).
XL_NOTE = ("Built with Transformer-XL relative attention (position='xl_relative': sinusoidal relative "
               "encodings, a W_R projection per layer, u/v biases shared by the layers) and no recurrence memory "
               "(mem_len=0; Rae et al. 2021 train on 2048-token sequences). Whether Gopher ties u/v across layers "
               "is not published (2 x d weights either way, <0.001%). No DeepMind checkpoint was released.")


def _gopher_like(name: str, layers: int, heads: int, head_dim: int, d_model: int) -> ModelConfig:
    return ModelConfig(
        name=name, family="gopher", arch="decoder", vocab_size=32000, d_model=d_model, n_layers=layers,
        n_heads=heads, head_dim=head_dim, d_ff=4 * d_model, max_seq_len=2048,
        position="xl_relative", activation="gelu", mlp_gated=False, norm="rmsnorm", tie_embeddings=True,
    )


# Rae et al. 2021, Table 1 (Minaee et al. 2024, figure 13): params, layers, heads, key/value size, d_model.
GOPHER_SIZES = {
    "gopher-44m": (44e6, 8, 16, 32, 512),
    "gopher-117m": (117e6, 12, 12, 64, 768),
    "gopher-417m": (417e6, 12, 12, 128, 1536),
    "gopher-1.4b": (1.4e9, 24, 16, 128, 2048),
    "gopher-7.1b": (7.1e9, 32, 32, 128, 4096),
    "gopher-280b": (280e9, 80, 128, 128, 16384),
}
CHINCHILLA = _gopher_like("chinchilla-70b", 80, 64, 128, 8192)

# RETRO 7.5B (Borgeaud et al. 2022, Table 2 and section 4): Gopher-7B's decoder with a 128k SentencePiece
# vocabulary, chunked cross-attention every 3rd layer from layer 6, a 2-layer d=896 neighbour encoder reading
# neighbours of 2m = 128 tokens (a 64-token chunk and its continuation).
RETRO_7_5B = RetroConfig(
    "retro-7.5b",
    _gopher_like("retro-7.5b", 32, 32, 128, 4096).replace(
        family="retro", vocab_size=128000, cross_attentions=retro_layers(32), cca_chunk=64, cca_memory_dim=896),
    ModelConfig(name="retro-7.5b-encoder", family="retro", arch="encoder", head="none", position="learned",
                vocab_size=128000, d_model=896, n_layers=2, n_heads=16, head_dim=64, d_ff=3584, max_seq_len=128,
                activation="gelu", mlp_gated=False, norm="rmsnorm"),
    n_neighbours=2,
)


def _deepmind(name: str, params: float | None, year: int, config: ModelConfig | None, **kw) -> ModelCard:
    return ModelCard(name=name, family=kw.pop("family", "gopher"), kind="decoder", params_published=params,
                     year=year, organisation="DeepMind", open_weights=False, config=config, **kw)


CARDS = (
    *(
        _deepmind(
            name, params, 2021, _gopher_like(name, *shape), training_tokens=300e9, context_length=2048,
            source="minaee2024, zoo-lecture, naveed2023, fm-notes", aliases=("gopher",) if name == "gopher-280b" else (),
            architecture="Pre-RMSNorm decoder with Transformer-XL relative positional encodings; trained on "
                         "300B of MassiveText's 2350B tokens (12.8%); 44M to 280B to study scale.",
                notes="Naveed et al. 2023: beats GPT-3, Jurassic-1 and MT-NLG on 81% of tasks. Shapes from Rae et al. 2021, Table 1. " + XL_NOTE,
        )
        for name, (params, *shape) in GOPHER_SIZES.items()
    ),
    _deepmind(
        "chinchilla-70b", 70e9, 2022, CHINCHILLA, training_tokens=1.4e12, context_length=2048,
        source="minaee2024, zoo-lecture, naveed2023, fm-notes", aliases=("chinchilla",),
        architecture="Gopher's architecture trained with AdamW instead of Adam, compute-optimally: Gopher's budget "
                     "(5.76e23 FLOPs) at a quarter of the size and 4x the data.",
        notes="Minaee et al. 2024: 1.4T tokens; the LLM Zoo lecture notes: 1.5T. Hoffmann et al. 2022: 80 layers, 64 heads of 128, "
              "d_model 8192, 1.4T tokens; MMLU 67.5%. " + XL_NOTE,
    ),
    _deepmind(
        "sparrow-70b", 70e9, 2022, sized(CHINCHILLA, "sparrow-70b", family="gopher"), base_model="chinchilla-70b",
        context_length=2048, source="minaee2024", aliases=("sparrow",),
        architecture="Chinchilla-70B dialogue agent trained with RLHF and targeted rules; evidence from search.",
        notes="The surveys give no size; Glaese et al. 2022 fine-tune Chinchilla 70B. " + XL_NOTE,
    ),
    _deepmind(
        "retro-7.5b", 7.5e9, 2021, None, training_tokens=600e9, source="minaee2024, borgeaud2022", family="retro", aliases=("retro",),
        context_length=2048, composite=RETRO_7_5B,
        architecture="Retrieval-Enhanced Transformer: a frozen BERT retriever finds neighbours of each 64-token "
                     "chunk in a 2T-token database; an encoder embeds them and chunked cross-attention feeds them "
                     "to the decoder. Matches GPT-3/Jurassic-1 on the Pile with 25x fewer parameters.",
        notes="Minaee et al. 2024 says '25% fewer parameters'; Borgeaud et al. 2021 say 25x. Shapes from Borgeaud et "
              "al. 2022, Table 2: d 4096, d_ffw 16384, 32 heads of 128, 32 layers (Gopher-7B's decoder, with its "
              "Transformer-XL relative encodings), 7,532M parameters excluding embeddings (6,982M for the "
              "baseline); the published 7.5B excludes the 128k-token embedding tables, which `parameters` counts. "
              "CCA at layers 6, 9, ..., 30 (every 3rd from 6), k=2 neighbours of 2 x 64 tokens. Built by "
              "llmzoo.models.retro (RetroConfig), database and retriever in llmzoo.retro.",
        approximation="The neighbour encoder (2 layers, d 896, 16 heads of 64) uses learned absolute positions "
                      "(the decoder and CCA use relative encodings) and its own token embedding, and reads the chunk's "
                      "decoder states through one 4096-to-896 projection shared by its cross-attention layers; "
                      "the retriever is all-MiniLM-L6-v2, not the paper's frozen BERT-large.",
    ),
)
