"""Fine-tuning tasks for the one training loop (`llmzoo finetune --recipe R`).

A fine-tuning task is a builder registered by name (llmzoo/finetune/registry.py documents the
contract): it reads the recipe's `data:` mapping and returns a FinetuneData (a loss + row
datasets); the loop in llmzoo/train/ does everything else (PEFT, checkpoints, exact resume,
spike rewinds, progress, metrics, the saved adapter and model).

    from llmzoo.finetune import FinetuneData, register_task
    register_task("my-task", lambda recipe, tokenizer, model: FinetuneData(task, train_rows, val_rows))
"""

from llmzoo.finetune.registry import FinetuneData, FinetuneTask, RowDataset, get_task, register_task, task_names

__all__ = ["FinetuneData", "FinetuneTask", "RowDataset", "get_task", "register_task", "task_names"]
