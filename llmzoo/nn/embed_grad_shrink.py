"""GLM-130B's embedding gradient shrink (Zeng et al. 2022, section 3, "Embedding Layer Gradient Shrink").

Loss spikes in GLM-130B's training followed gradient-norm spikes in the embedding layer; scaling the
embeddings' gradient by a factor a (0.1) while leaving their forward value alone stabilised it:
    emb = emb * a + emb.detach() * (1 - a)
The two terms sum to emb in the forward pass; only the first carries a gradient, times a.
"""

from __future__ import annotations

import torch


def shrink_embedding_gradient(h: torch.Tensor, scale: float | None) -> torch.Tensor:
    """`h` unchanged in value, its gradient multiplied by `scale` (None or 1.0: untouched)."""
    if scale is None or scale == 1.0:
        return h
    return h * scale + h.detach() * (1.0 - scale)
