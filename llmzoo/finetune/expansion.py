"""Fine-tuning that grows what a model covers, registered for `llmzoo finetune`:

- task `clm` (llmzoo/finetune/continued_pretraining.py): continued pretraining on new token shards
  from any loaded checkpoint, and context extension with model.rope_scaling + longer windows
  (docs/context_extension.md);
- LLaMA-Pro block expansion is a PEFT method (llmzoo/peft/block_expansion.py): `peft.method=llama_pro`
  on any task, e.g. task=clm for domain-adaptive continued pretraining as in Wu et al. 2024.
"""

from llmzoo.finetune import continued_pretraining  # noqa: F401  (registers "clm")
