"""train_objective: a small pretraining run of one objective on an in-memory token stream.

For checking that an objective and its model learn (tests, docs/objectives.md) and for trying one
out; real runs go through `llmzoo pretrain`. It is a thin front of the one training loop
(llmzoo/train/loop.py): the stream becomes the rows of the `objective-stream` fine-tuning task
(llmzoo.finetune registry) and the given model trains in place. Each step draws `batch_size`
random windows of `seq_len` tokens from the stream, corrupts them with the objective (one seeded
generator for the run), runs the model with forward_for_objective and takes one AdamW step.

XLM's objectives need more than one language, which a monolingual stream lacks. The run makes a
second one: a substitution cipher of the stream (a fixed random permutation of the non-special
ids), so language 1 has its own vocabulary and the same grammar. `xlm_mlm` / `xlm_clm` rows are in
either language at random; `xlm_tlm` pairs each window with its cipher (a "translation" whose
masked words are recoverable only through the learned token mapping).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from llmzoo.errors import LlmzooError
from llmzoo.finetune.registry import FinetuneData, register_task
from llmzoo.objectives.modeling.build import model_for_objective, resolve_objective
from llmzoo.objectives.modeling.forward import check_fits, forward_for_objective

TASK = "objective-stream"


def cipher_table(vocab_size: int, special_ids: Tensor, seed: int = 0) -> Tensor:
    """(vocab_size,) a permutation of the non-special ids; special ids map to themselves."""
    table = torch.arange(vocab_size)
    ordinary = torch.ones(vocab_size, dtype=torch.bool)
    ordinary[special_ids[special_ids < vocab_size]] = False
    ids = table[ordinary]
    shuffled = ids[torch.randperm(ids.numel(), generator=torch.Generator().manual_seed(seed))]
    table[ordinary] = shuffled
    return table


def random_windows(stream: Tensor, batch_size: int, length: int, generator: torch.Generator) -> Tensor:
    """(batch_size, length) windows of the 1-D stream at uniformly random offsets."""
    starts = torch.randint(0, stream.numel() - length + 1, (batch_size,), generator=generator)
    return stream[starts.unsqueeze(1) + torch.arange(length).unsqueeze(0)]


class BatchSource:
    """Objective batches from random windows of a token stream (with XLM's second language)."""

    def __init__(self, objective: Any, stream: Tensor, batch_size: int, seq_len: int, vocab_size: int,
                 seed: int = 0) -> None:
        if stream.dim() != 1 or stream.dtype.is_floating_point:
            raise LlmzooError(f"tokens must be a 1-D tensor of token ids, got shape {tuple(stream.shape)} {stream.dtype}")
        self.objective = objective
        self.stream = stream.long()
        self.batch_size = batch_size
        self.seq_len = seq_len
        # TLM packs two sentences and 4 separators into a row: each side gets half of seq_len.
        self.window = max(1, (seq_len - 4) // 2) if objective.name == "xlm_tlm" else seq_len
        if self.stream.numel() < self.window:
            raise LlmzooError(f"the token stream has {self.stream.numel()} tokens, fewer than one window of {self.window}")
        self.cipher = cipher_table(vocab_size, objective.special_ids(), seed) if objective.name.startswith("xlm") else None

    def __call__(self, generator: torch.Generator) -> dict[str, Tensor]:
        rows = random_windows(self.stream, self.batch_size, self.window, generator)
        name = self.objective.name
        if name == "xlm_tlm":
            return self.objective.make_batch(rows, generator, target_tokens=self.cipher[rows])
        if name in ("xlm_mlm", "xlm_clm"):
            langs = torch.randint(0, 2, (rows.size(0),), generator=generator)
            rows = torch.where(langs.unsqueeze(1) == 1, self.cipher[rows], rows)
            return self.objective.make_batch(rows, generator, langs=langs)
        return self.objective.make_batch(rows, generator)


class StreamRows:
    """`rows` training rows of an objective over a stream, drawn by BatchSource from one generator
    that runs through the whole run (the objective's forward draws from it too, as ELECTRA's
    replacement sampling does).

    Unlike the registry contract's datasets, a batch is not a pure function of its indices: it is
    the next draw. That keeps train_objective's batches what they were before it ran on the shared
    loop (tests/objectives/test_training_runs.py measured its bars on them; GLM's context gap, for
    one, measured -0.029 nats on per-batch seeded draws and +0.035 on these), and is safe because such a run never
    resumes or rewinds: it writes no checkpoints."""

    def __init__(self, source: BatchSource, rows: int, generator: torch.Generator) -> None:
        self.source, self.n, self.generator = source, rows, generator

    def __len__(self) -> int:
        return self.n

    def rows(self, indices: list[int]) -> dict[str, Tensor]:
        self.source.batch_size = len(indices)
        return self.source(self.generator)


class StreamObjectiveTask:
    """An objective's loss on its own way of running the model (forward_for_objective)."""

    def __init__(self, objective: Any, generator: torch.Generator) -> None:
        self.objective = objective
        self.generator = generator
        self.loss_is_token_mean = bool(getattr(objective, "loss_is_token_mean", True))

    def model_inputs(self, batch: dict[str, Tensor]) -> dict[str, Any]:
        return {"input_ids": batch["input_ids"]}

    def forward(self, model: nn.Module, batch: dict[str, Tensor]):
        from llmzoo.train.distributed import unwrap

        return forward_for_objective(unwrap(model), self.objective, batch, self.generator, through=model)

    def loss(self, outputs, batch: dict[str, Tensor]) -> Tensor:
        return self.objective.loss(outputs, batch)[0]

    def token_count(self, batch: dict[str, Tensor]) -> int:
        return int(batch["input_ids"].numel())


def _build_stream_task(recipe, tokenizer, model) -> FinetuneData:
    data = recipe.data or {}
    source = data.get("source")
    if not isinstance(source, BatchSource):
        raise LlmzooError(f"task {TASK!r} trains on an in-memory token stream; call "
                          f"llmzoo.objectives.modeling.train_objective(...) rather than naming it in a recipe file")
    generator = torch.Generator().manual_seed(recipe.seed)
    return FinetuneData(task=StreamObjectiveTask(source.objective, generator),
                        train=StreamRows(source, recipe.max_steps * recipe.batch_size, generator))


register_task(TASK, _build_stream_task)


def train_objective(
    objective: Any,
    tokens: Tensor,
    *,
    vocab_size: int,
    special_tokens: Mapping[str, int] | None = None,
    options: Mapping[str, Any] | None = None,
    steps: int = 200,
    batch_size: int = 8,
    seq_len: int = 64,
    lr: float = 1e-3,
    warmup: int = 10,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.99),
    seed: int = 0,
    size: str = "tiny",
    model: nn.Module | None = None,
    progress: bool = False,
) -> list[float]:
    """Train `objective` (a name or an Objective) on random windows of the 1-D `tokens` stream and
    return the loss of every step. The model is the objective's matching architecture at `size`
    (model_for_objective) unless one is given (it trains in place); AdamW with linear warmup to a
    constant `lr` (weight decay on matrices only, as llmzoo.train.optim groups them), gradients
    clipped at 1, fp32.

    lr 1e-3: at 3e-3 the tiny post-norm encoders (ALBERT) and XLNet sometimes settle within 200
    steps into predicting their targets' frequencies whatever the input says (measured with
    evaluate.context_check); at 1e-3 every encoder-only and decoder-only model reads its context."""
    import tempfile

    from llmzoo.train.loop import train
    from llmzoo.train.recipe import Recipe

    obj = resolve_objective(objective, special_tokens, vocab_size, options)
    obj.check(seq_len=seq_len)
    if steps < 1 or batch_size < 1:
        raise LlmzooError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    torch.manual_seed(seed)  # model initialisation
    if model is None:
        model = model_for_objective(obj, vocab_size=vocab_size, special_tokens=special_tokens, size=size)
    check_fits(model, obj)
    source = BatchSource(obj, tokens, batch_size, seq_len, vocab_size, seed)
    with tempfile.TemporaryDirectory(prefix=f"llmzoo-{obj.name}-") as run_dir:
        # checkpoint_every=0: nothing to resume (the stream and model live in memory only)
        recipe = Recipe(name=f"objective-{obj.name}", task=TASK, model={"from": "(in memory)"}, data={"source": source},
                        run_dir=run_dir, seed=seed, seq_len=seq_len, batch_size=batch_size, max_steps=steps,
                        lr=lr, min_lr=lr, warmup_steps=warmup, decay="constant", weight_decay=weight_decay,
                        beta1=betas[0], beta2=betas[1], grad_clip=1.0, precision="fp32", fuse_projections=False,
                        eval_every=0, checkpoint_every=0, progress=progress, peak_flops=1e12)
        result = train(recipe, model=model)
    return [result.losses[step] for step in range(1, steps + 1)]
