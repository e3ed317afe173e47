"""The PPO run's curves: the judge's mean reward and the KL to the reference per step, from the
loop's train records (metrics.jsonl), as run_dir/ppo_curves.png."""

from __future__ import annotations

from pathlib import Path

from llmzoo.train.metrics import read_metrics

CURVES_FILE = "ppo_curves.png"


def plot_ppo_curves(run_dir: str | Path, title: str = "") -> Path | None:
    records = [r for r in read_metrics(run_dir) if r.get("kind") == "train" and "reward" in r]
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), dpi=110, sharex=True)
    top.plot(steps, [r["reward"] for r in records], lw=1.0, label="judge's mean reward (rollout)")
    top.set_ylabel("reward")
    bottom.plot(steps, [r["kl"] for r in records], lw=1.0, color="tab:red", label="KL(policy || reference)")
    bottom.set_ylabel("KL (nats / answer)")
    bottom.set_xlabel("step (one PPO minibatch update)")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
    top.set_title(title)
    fig.tight_layout()
    out = Path(run_dir) / CURVES_FILE
    fig.savefig(out)
    plt.close(fig)
    return out
