"""Alignment: preference losses and the pieces RLHF is built from (InstructGPT, DPO, PPO).

    from llmzoo.align import sequence_logps, reward_loss, dpo_loss, gae

Trainers run through the one training loop as fine-tuning tasks: `reward` (reward_task.py) and `dpo`
(dpo_task.py) on preference pairs (preference_data.py), `ppo` (ppo_task.py: rollouts in ppo_rollout.py,
judges in ppo_judge.py, the loss pieces in ppo.py), `llmzoo align reward|dpo|ppo`; best-of-n /
rejection sampling in best_of_n.py. See docs/alignment.md.
"""

from llmzoo.align.logps import sequence_logps
from llmzoo.align.losses import dpo_loss, gae, reward_loss
from llmzoo.align.ppo import kl_penalized_rewards, masked_gae, ppo_losses, whiten

__all__ = ["dpo_loss", "gae", "kl_penalized_rewards", "masked_gae", "ppo_losses", "reward_loss", "sequence_logps",
           "whiten"]
