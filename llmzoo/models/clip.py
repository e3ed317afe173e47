"""CLIP (Radford et al. 2021): a text tower and an image tower trained so that matching captions
and images have the highest cosine similarity in a shared space.

    out = model(input_ids=ids, pixel_values=images, attention_mask=mask, return_loss=True)
    out.logits_per_image  # (images, texts): exp(logit_scale) * cos(image_i, text_j)
    out.logits_per_text   # its transpose
    out.image_embeds, out.text_embeds  # L2-normalised projections (transformers' names)
    out.loss              # the symmetric contrastive loss, with return_loss=True

Each tower's pooled state goes through a linear projection without bias; the temperature is
learned as a log (`logit_scale`; its exp multiplies the cosine similarities, section 2.5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.models.clip_config import CLIPConfig
from llmzoo.models.clip_text import TextTower
from llmzoo.models.outputs import ModelOutput
from llmzoo.models.vision import VisionTower


def contrastive_loss(logits_per_text: torch.Tensor) -> torch.Tensor:
    """The symmetric cross-entropy of the paper's Figure 3: caption i matches image i; the mean of
    the loss over texts (rows) and over images (columns)."""
    if logits_per_text.shape[0] != logits_per_text.shape[1]:
        raise LlmzooError(f"the contrastive loss pairs caption i with image i, but there are {logits_per_text.shape[0]} "
                          f"texts and {logits_per_text.shape[1]} images; pass as many of each")
    targets = torch.arange(logits_per_text.shape[0], device=logits_per_text.device)
    return (F.cross_entropy(logits_per_text, targets) + F.cross_entropy(logits_per_text.t(), targets)) / 2


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.pow(2).sum(-1, keepdim=True).sqrt()


class CLIPModel(nn.Module):
    def __init__(self, config: CLIPConfig) -> None:
        super().__init__()
        if not isinstance(config, CLIPConfig):
            raise LlmzooError(f"CLIPModel needs a CLIPConfig, got {type(config).__name__}")
        self.config = config
        self.text = TextTower(config.text)
        self.vision = VisionTower(config.vision)
        self.text_projection = nn.Linear(config.text.d_model, config.projection_dim, bias=False)
        self.visual_projection = nn.Linear(config.vision.d_model, config.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init)))

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) token ids -> (B, projection_dim) projected EOS states (not normalised)."""
        return self.text_projection(self.text(input_ids, attention_mask)[1])

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images -> (B, projection_dim) projected class-token states (not normalised)."""
        return self.visual_projection(self.vision(pixel_values)[1])

    def forward(self, input_ids: torch.Tensor | None = None, pixel_values: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, return_loss: bool = False) -> ModelOutput:
        if input_ids is None or pixel_values is None:
            missing = " and ".join(n for n, v in (("input_ids", input_ids), ("pixel_values", pixel_values)) if v is None)
            raise LlmzooError(f"CLIP compares texts with images: pass {missing} (or use get_text_features / "
                              f"get_image_features for one tower)")
        image_embeds = _normalise(self.get_image_features(pixel_values))
        text_embeds = _normalise(self.get_text_features(input_ids, attention_mask))
        logits_per_text = text_embeds @ image_embeds.t() * self.logit_scale.exp()  # (texts, images)
        out = ModelOutput(logits_per_image=logits_per_text.t(), logits_per_text=logits_per_text,
                          text_embeds=text_embeds, image_embeds=image_embeds)
        if return_loss:
            out.loss = contrastive_loss(logits_per_text)
        return out


@torch.no_grad()
def zero_shot_classify(model: CLIPModel, pixel_values: torch.Tensor, class_token_ids: torch.Tensor,
                       attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Class probabilities (images, classes) for images against one caption per class (section 3.1.2:
    the classifier's weights are the text tower's embeddings of the class names, e.g. "a photo of a
    {label}"); `.argmax(-1)` gives each image's predicted class index."""
    if class_token_ids.dim() != 2 or class_token_ids.shape[0] < 2:
        raise LlmzooError(f"class_token_ids has shape {tuple(class_token_ids.shape)}; expected (classes >= 2, tokens), "
                          f"one tokenized caption per class")
    out = model(input_ids=class_token_ids, pixel_values=pixel_values, attention_mask=attention_mask)
    return out.logits_per_image.softmax(-1)
