"""Alignment: preference losses and the pieces RLHF is built from (InstructGPT, DPO, PPO).

    from llmzoo.align import sequence_logps, reward_loss, dpo_loss, gae
"""

from llmzoo.align.logps import sequence_logps
from llmzoo.align.losses import dpo_loss, gae, reward_loss

__all__ = ["dpo_loss", "gae", "reward_loss", "sequence_logps"]
