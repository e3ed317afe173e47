"""Model-parallel layouts usable outside the training loop: expert parallelism (llmzoo.parallel.expert)."""
