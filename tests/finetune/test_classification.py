"""Encoder fine-tuning tasks (seq-cls, token-cls, qa): the loss and accuracy against hand-computed
values, the tokenised rows against transformers' tokenizer of the same model, the fresh head on a
checkpoint without one, SST-2's deterministic split, and bad rows refused in one line."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
import transformers

import llmzoo
from llmzoo.errors import LlmzooError
from llmzoo.finetune.classification import classification_loss, correct_and_count, evaluate
from llmzoo.eval.tasks.sst2_heldout import sst2_halves
from llmzoo.finetune.extractive_qa import span_loss
from llmzoo.finetune.new_head import attach_head
from llmzoo.finetune.registry import get_task
from llmzoo.models.build import build_model
from llmzoo.tokenizer import load_tokenizer

MINILM = "minilm"


@pytest.fixture(scope="module")
def minilm_dir():
    return llmzoo.load(MINILM).tokenizer_source


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    return load_tokenizer(minilm_dir)


def tiny_bert(head: str = "seq_cls", n_labels: int = 2) -> torch.nn.Module:
    """A small random encoder with MiniLM's vocabulary and layout (post-norm BERT, token types)."""
    config = llmzoo.load(MINILM).config.replace(d_model=32, n_layers=2, n_heads=2, d_ff=64, head=head, n_labels=n_labels)
    torch.manual_seed(0)
    return build_model(config)


def recipe(tmp_path, **data):
    return SimpleNamespace(data=data, seq_len=64, seed=0)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_loss_and_accuracy_are_the_hand_computed_ones():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0]])
    labels = torch.tensor([0, 0, 1])
    # -log softmax: row 0 log(1 + e^-2), row 1 log(1 + e^1), row 2 log(1 + e^4)
    expected = (math.log1p(math.exp(-2)) + math.log1p(math.exp(1)) + math.log1p(math.exp(4))) / 3
    assert classification_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    assert correct_and_count(logits, labels) == (1, 3)
    tagged = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 0.0]]])  # token_cls: -100 is skipped
    assert correct_and_count(tagged, torch.tensor([[0, 0, -100]])) == (1, 2)
    assert classification_loss(tagged, torch.tensor([[0, 0, -100]])).item() == pytest.approx(
        (math.log1p(math.exp(-1)) + math.log1p(math.exp(1))) / 2, rel=1e-6)
    start, end = torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 1.0]])
    assert span_loss(start, end, torch.tensor([1]), torch.tensor([0])).item() == pytest.approx(
        (math.log1p(math.exp(-2)) + math.log(2)) / 2, rel=1e-6)


def test_a_checkpoint_without_the_head_gets_a_fresh_one_with_a_note(capsys):
    model = llmzoo.load(MINILM)
    encoder = {k: v.clone() for k, v in model.state_dict().items()}
    assert model.config.head == "none" and not hasattr(model, "classifier")
    assert attach_head(model, "seq_cls", 3) == ["classifier"]
    assert "no trained seq_cls head; classifier initialised fresh (n_labels=3)" in capsys.readouterr().err
    assert model.config.head == "seq_cls" and model.classifier.out_features == 3
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in encoder.items())  # encoder and pooler kept
    assert attach_head(model, "seq_cls", 3) == []  # already there: nothing new


def test_sentence_pairs_tokenise_as_transformers_does(tmp_path, tokenizer, minilm_dir):
    rows = [{"text": "A charming film.", "text_pair": "I liked it a lot.", "label": "pos"},
            {"text": "Dull and far too long; a waste of an evening.", "label": "neg"}]
    model = tiny_bert()
    data = get_task("seq-cls")(recipe(tmp_path, train=write_jsonl(tmp_path / "t.jsonl", rows), labels=["neg", "pos"]),
                               tokenizer, model)
    batch = data.train.rows([0, 1])
    reference = transformers.AutoTokenizer.from_pretrained(minilm_dir)
    for i, row in enumerate(rows):  # row by row: the batch mixes a pair and a single sentence
        ref = reference(row["text"], row.get("text_pair"))
        n = len(ref["input_ids"])
        assert batch["input_ids"][i, :n].tolist() == ref["input_ids"]
        assert batch["token_type_ids"][i, :n].tolist() == ref["token_type_ids"]
        assert batch["attention_mask"][i].sum().item() == n
    assert batch["labels"].tolist() == [1, 0]
    outputs = model(**data.task.model_inputs(batch))
    assert outputs.logits.shape == (2, 2)
    assert data.task.loss(outputs, batch).requires_grad


def test_token_tags_go_on_the_first_sub_word(tmp_path, tokenizer):
    rows = [{"tokens": ["Hugging", "unaffable", "Paris"], "tags": [1, 0, 2]}]
    data = get_task("token-cls")(recipe(tmp_path, train=write_jsonl(tmp_path / "t.jsonl", rows)),
                                 tokenizer, tiny_bert("token_cls", 3))
    batch = data.train.rows([0])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    words = [tokenizer.decode([i]) for i in ids]
    assert labels[0] == -100 and labels[-1] == -100  # [CLS], [SEP]
    tagged = [(w, t) for w, t in zip(words, labels) if t != -100]
    assert [t for _, t in tagged] == [1, 0, 2]
    assert [w for w, _ in tagged] == [tokenizer.decode(tokenizer.encode(w, add_special_tokens=False)[:1])
                                      for w in rows[0]["tokens"]]
    assert len(ids) > len(rows[0]["tokens"]) + 2  # some word split into several pieces, only the first tagged


def test_qa_span_covers_the_answer(tmp_path, tokenizer):
    context = "The Eiffel Tower was completed in 1889 for the World's Fair."
    rows = [{"question": "When was it completed?", "context": context,
             "answers": {"text": ["1889"], "answer_start": [context.index("1889")]}}]
    data = get_task("qa")(recipe(tmp_path, train=write_jsonl(tmp_path / "q.jsonl", rows)), tokenizer, tiny_bert("qa"))
    batch = data.train.rows([0])
    s, e = batch["start_positions"].item(), batch["end_positions"].item()
    assert tokenizer.decode(batch["input_ids"][0, s:e + 1].tolist()) == "1889"


def test_a_few_steps_fit_the_training_rows_and_evaluate_counts_them(tmp_path, tokenizer):
    rows = [{"text": t, "label": l} for t, l in [("good", 1), ("bad", 0), ("great fun", 1), ("awful mess", 0)]]
    model = tiny_bert()
    data = get_task("seq-cls")(recipe(tmp_path, train=write_jsonl(tmp_path / "t.jsonl", rows)), tokenizer, model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = data.train.rows([0, 1, 2, 3])
    losses = []
    for _ in range(30):
        loss = data.task.loss(model(**data.task.model_inputs(batch)), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 4
    assert evaluate(model, data.task, data.train, batch_size=3) == {"accuracy": 1.0, "examples": 4.0}


def test_sst2_split_is_deterministic_and_disjoint(tmp_path, tokenizer):
    build = get_task("seq-cls")
    first = build(recipe(tmp_path, builtin="sst2", train_fraction=0.5), tokenizer, tiny_bert())
    again = build(recipe(tmp_path, builtin="sst2", train_fraction=0.5), tokenizer, tiny_bert())
    assert len(first.train) + len(first.val) == 872  # GLUE SST-2 validation
    assert first.train.examples == again.train.examples
    # the same held-out half as the SFT recipe's `llmzoo eval --tasks sst2_heldout`
    held_out = [tokenizer.encode(r["sentence"].strip()) for r in sst2_halves()[1]]
    assert [e["input_ids"] for e in first.val.examples] == held_out
    as_key = lambda ex: tuple(ex["input_ids"])
    assert not {as_key(e) for e in first.train.examples} & {as_key(e) for e in first.val.examples}


@pytest.mark.parametrize("rows, data, message", [
    (['{"text": "fine", "label": 1}', '{"text": "oops"'], {}, r"t.jsonl:2: not valid JSON"),
    (['{"text": "fine", "label": 5}'], {}, r"row 1: label 5 is outside 0..1; set model.n_labels"),
    (['{"text": "fine", "label": "meh"}'], {"labels": ["neg", "pos"]}, r"label 'meh' is not one of data.labels"),
    (['{"sentence": "fine", "label": 1}'], {}, r"t.jsonl:1: training row lacks 'text'"),
])
def test_bad_rows_are_one_line_errors(tmp_path, tokenizer, rows, data, message):
    (tmp_path / "t.jsonl").write_text("\n".join(rows) + "\n")
    with pytest.raises(LlmzooError, match=message):
        get_task("seq-cls")(recipe(tmp_path, train=str(tmp_path / "t.jsonl"), **data), tokenizer, tiny_bert())


def test_a_model_without_the_head_is_told_how_to_add_it(tmp_path, tokenizer):
    with pytest.raises(LlmzooError, match="set model.head=seq_cls model.n_labels=N"):
        get_task("seq-cls")(recipe(tmp_path, builtin="sst2"), tokenizer, tiny_bert("none"))
    with pytest.raises(LlmzooError, match="data.labels names 3 labels but model.n_labels is 2"):
        get_task("seq-cls")(recipe(tmp_path, builtin="sst2", labels=["a", "b", "c"]), tokenizer, tiny_bert())


def test_a_decoder_is_refused_for_classification(tmp_path, tokenizer):
    decoder = build_model(llmzoo.load(MINILM).config.replace(arch="decoder", head="lm", norm_placement="pre",
                                                               type_vocab_size=0, pooler=None, d_model=32, n_layers=1,
                                                               n_heads=2, d_ff=64))
    with pytest.raises(LlmzooError, match="fine-tunes an encoder"):
        get_task("seq-cls")(recipe(tmp_path, builtin="sst2"), tokenizer, decoder)
