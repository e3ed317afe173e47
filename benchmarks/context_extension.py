"""Held-out perplexity of a base model and its context-extended fine-tunes, at the base's window
and at longer ones (docs/context_extension.md).

    python benchmarks/context_extension.py --data runs/context-base/data --base runs/context-base/model \
        --tuned runs/context-pi-shakespeare/model runs/context-no-pi/model --windows 64 256 \
        --plot docs/context_extension.png

Rows: the base as trained; the base with position interpolation (linear RoPE scaling by
longest window / base window) but no fine-tuning; each --tuned model. Perplexity is over every
non-overlapping window of the dataset's val split (llmzoo.finetune.continued_pretraining). The plot
shows the mean loss by position inside the longest window: where an unextended model breaks down.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

import llmzoo
from llmzoo.data import open_token_dataset
from llmzoo.finetune.continued_pretraining import TokenWindows, window_perplexity
from llmzoo.models.build import build_model


def interpolated(model: torch.nn.Module, factor: float) -> torch.nn.Module:
    """The same weights with RoPE positions divided by `factor` (Chen et al. 2023), untrained."""
    config = model.config.replace(rope_scaling={"kind": "linear", "factor": factor},
                                  max_seq_len=int(model.config.max_seq_len * factor))
    scaled = build_model(config)
    scaled.load_state_dict(model.state_dict())
    return scaled.eval()


@torch.no_grad()
def loss_by_position(model: torch.nn.Module, windows: TokenWindows, batch_size: int = 8) -> torch.Tensor:
    model.eval()
    total = torch.zeros(windows.seq_len)
    for start in range(0, len(windows), batch_size):
        batch = windows.rows(list(range(start, min(start + batch_size, len(windows)))))
        logits = model(batch["input_ids"]).logits.float()
        nll = F.cross_entropy(logits.transpose(1, 2), batch["labels"], reduction="none")  # (B, T)
        total += nll.sum(0)
    return total / len(windows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="prepared token dataset with a val split")
    parser.add_argument("--base", required=True, help="the model before context extension")
    parser.add_argument("--tuned", nargs="*", default=[], help="context-extended fine-tunes of --base")
    parser.add_argument("--windows", nargs="+", type=int, required=True)
    parser.add_argument("--plot", help="PNG of the mean loss by position in the longest window")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from _machine import describe_machine  # benchmarks/ is on sys.path when this script runs

    print(describe_machine(), flush=True)
    val = open_token_dataset(args.data, "val")
    base = llmzoo.load(args.base).eval()
    longest = max(args.windows)
    models = {f"base (trained at {base.config.max_seq_len})": base}
    factor = longest / base.config.max_seq_len
    models[f"base + PI x{factor:g}, not fine-tuned"] = interpolated(base, factor)
    for path in args.tuned:
        tuned = llmzoo.load(path).eval()
        s = tuned.config.rope_scaling
        how = f"{s.kind} x{s.factor:g}" if s is not None else "no scaling"
        models[f"{Path(path).parent.name} ({how})"] = tuned
    windows = {w: TokenWindows(val, w) for w in args.windows}
    print(f"held-out perplexity ({val.num_tokens} val tokens, non-overlapping windows)")
    print(f"{'model':48s}" + "".join(f"{'@' + str(w):>10s}" for w in args.windows))
    for name, model in models.items():
        print(f"{name:48s}" + "".join(f"{window_perplexity(model, windows[w]):10.2f}" for w in args.windows), flush=True)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for name, model in models.items():
            curve = loss_by_position(model, windows[longest])
            smooth = F.avg_pool1d(curve[None, None], 8, stride=8)[0, 0]
            ax.plot(torch.arange(len(smooth)) * 8 + 4, smooth, label=name)
        ax.axvline(base.config.max_seq_len, color="grey", linestyle=":", label="base window")
        ax.set_xlabel("position in the window")
        ax.set_ylabel("mean next-token loss (nats)")
        ax.set_title(f"held-out loss by position, {longest}-token windows")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
