"""Seq2seq fine-tuning (T0/FLAN-style prompted source -> target) on tiny random T5 and BART models:
the rows are the prompt and the target + EOS, the loss falls over a few steps, and the saved model
generates through llmzoo.generate."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

import llmzoo
from llmzoo.errors import LlmzooError
from llmzoo.finetune.registry import get_task
from llmzoo.models.zoo import get_config
from llmzoo.tokenizer.train import train_tokenizer

SHAPE = dict(d_model=32, n_layers=2, n_heads=4, head_dim=8, d_ff=64, max_seq_len=64, dropout=0.0)
PAIRS = [("to be", "or not"), ("the question", "whether tis"), ("nobler in", "the mind"), ("to suffer", "to be")]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus") / "hamlet.txt"
    corpus.write_text("To be, or not to be, that is the question: whether tis nobler in the mind to suffer\n" * 30)
    return train_tokenizer([corpus], kind="wordpiece", vocab_size=60, progress=False)


def tiny(name: str, tokenizer) -> torch.nn.Module:
    base = get_config(name)
    pad, eos = tokenizer.pad_token_id, tokenizer.token_to_id("[SEP]")
    start = {base.pad_token_id: pad, base.eos_token_id: eos}.get(base.decoder_start_token_id)
    torch.manual_seed(0)
    return llmzoo.build_model(base.replace(vocab_size=tokenizer.vocab_size, **SHAPE, pad_token_id=pad,
                                           eos_token_id=eos, bos_token_id=None, decoder_start_token_id=start))


def prompted(tmp_path):
    rows = [{"line": a, "next": b} for a, b in PAIRS]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return SimpleNamespace(data={"train": str(path), "prompt": "continue: {line}", "response": "{next}"}, seq_len=32, seed=0)


@pytest.mark.parametrize("name", ["t5-small", "bart-base"])
def test_loss_falls_and_the_saved_model_generates(name, tokenizer, tmp_path):
    model = tiny(name, tokenizer)
    data = get_task("seq2seq")(prompted(tmp_path), tokenizer, model)
    batch = data.train.rows(list(range(len(PAIRS))))
    first = batch["input_ids"][0][batch["attention_mask"][0] == 1].tolist()
    assert first == tokenizer.encode("continue: to be")
    target = batch["labels"][0][batch["labels"][0] != -100].tolist()
    assert target == tokenizer.encode("or not") and target[-1] == model.config.eos_token_id
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    # Train to memorisation rather than for a fixed step count: T5 at lr 1e-2 is near loss 0.1 after
    # 80 steps, where rounding on a different CPU decided whether "to be" -> "or not" was learnt yet.
    for _ in range(400):
        loss = data.task.loss(model(**data.task.model_inputs(batch)), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if losses[-1] < 0.01:
            break
    assert losses[-1] < 0.01 < losses[0]
    llmzoo.save(model.eval(), tmp_path / "model", tokenizer=tokenizer)
    reloaded = llmzoo.load(tmp_path / "model")
    reply = llmzoo.generate(reloaded, tokenizer, "continue: to be", max_new_tokens=8)
    assert reply.replace(" ", "") == "ornot"  # the four training pairs are learnt


def test_a_template_field_the_row_lacks_names_it(tokenizer, tmp_path):
    recipe = prompted(tmp_path)
    recipe.data["prompt"] = "continue: {verse}"
    with pytest.raises(LlmzooError, match=r"row 1: data.prompt template names field 'verse'.*fields: line, next"):
        get_task("seq2seq")(recipe, tokenizer, tiny("t5-small", tokenizer))


def test_a_decoder_is_refused(tokenizer, tmp_path):
    decoder = llmzoo.build_model(get_config("gpt-2-117m").replace(vocab_size=tokenizer.vocab_size, d_model=32,
                                                                   n_layers=1, n_heads=2, d_ff=64, max_seq_len=64))
    with pytest.raises(LlmzooError, match="fine-tunes an encoder-decoder"):
        get_task("seq2seq")(prompted(tmp_path), tokenizer, decoder)
