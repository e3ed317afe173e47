"""Text generation with encoder-decoders the way users run it: `llmzoo.generate` and `llmzoo generate DIR`
on T5 and BART built from zoo configs, with the greedy reply equal to transformers' `generate` on the
directory `llmzoo.save` wrote (so the saved config carries a usable decoder_start_token_id)."""

from __future__ import annotations

import pytest
import torch
import transformers

import llmzoo
from llmzoo.cli import main
from llmzoo.models.zoo import get_config
from llmzoo.tokenizer.train import train_tokenizer
from tests.parity.base import randomise

PROMPT, NEW = "To be or not", 6
SHAPE = dict(d_model=32, n_layers=2, n_heads=4, head_dim=8, d_ff=64, max_seq_len=64)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus") / "hamlet.txt"
    corpus.write_text("To be, or not to be, that is the question: whether tis nobler in the mind to suffer\n" * 30)
    return train_tokenizer([corpus], kind="wordpiece", vocab_size=60, progress=False)


def _model(name: str, tokenizer) -> torch.nn.Module:
    """A tiny zoo `name` with the tokenizer's ids: [PAD] pads, [SEP] ends; the decoder start keeps its
    family's role (T5: pad, BART: eos), as a pretrain run's export does."""
    base = get_config(name)
    pad, eos = tokenizer.pad_token_id, tokenizer.token_to_id("[SEP]")
    start = {base.pad_token_id: pad, base.eos_token_id: eos}.get(base.decoder_start_token_id)
    ids = dict(pad_token_id=pad, eos_token_id=eos, bos_token_id=None, decoder_start_token_id=start)
    torch.manual_seed(0)
    model = llmzoo.build_model(base.replace(vocab_size=tokenizer.vocab_size, **SHAPE, **ids)).eval()
    randomise(model, seed=0, std=0.5)  # larger weights: a random model then says more than one token
    return model


@pytest.mark.parametrize("name", ["t5-small", "bart-base"])
def test_generate_equals_transformers_generate_on_the_saved_directory(name, tokenizer, tmp_path):
    model = _model(name, tokenizer)
    text = llmzoo.generate(model, tokenizer, PROMPT, max_new_tokens=NEW)
    assert isinstance(text, str) and text

    llmzoo.save(model, tmp_path, tokenizer=tokenizer)
    ref = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    ids = torch.tensor([tokenizer.encode(PROMPT)])
    out = ref.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW, do_sample=False, num_beams=1)
    assert tokenizer.decode(out[0, 1:].tolist(), skip_special_tokens=True) == text
    penalised = ref.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW, do_sample=False,
                             num_beams=1, repetition_penalty=1.5)
    assert tokenizer.decode(penalised[0, 1:].tolist(), skip_special_tokens=True) == llmzoo.generate(
        model, tokenizer, PROMPT, max_new_tokens=NEW, repetition_penalty=1.5)
    assert llmzoo.generate(llmzoo.load(tmp_path), tokenizer, PROMPT, max_new_tokens=NEW) == text


@pytest.mark.parametrize("name", ["t5-small", "bart-base"])
def test_generate_options_work_for_encoder_decoders(name, tokenizer):
    model = _model(name, tokenizer)
    sampled = [llmzoo.generate(model, tokenizer, PROMPT, max_new_tokens=NEW, temperature=0.8, top_k=20, seed=s)
               for s in (0, 0)]
    assert sampled[0] == sampled[1]  # a seed makes sampling repeatable
    batch = llmzoo.generate(model, tokenizer, [PROMPT, "whether tis nobler"], max_new_tokens=NEW)
    assert batch[0] == llmzoo.generate(model, tokenizer, PROMPT, max_new_tokens=NEW)
    greedy = batch[0]
    streamed: list[str] = []
    assert llmzoo.generate(model, tokenizer, PROMPT, max_new_tokens=NEW, stream=streamed.append) == greedy
    assert "".join(streamed) == greedy
    stop = greedy.split()[-1]
    assert llmzoo.generate(model, tokenizer, PROMPT, max_new_tokens=NEW, stop=[stop]) == greedy[:greedy.index(stop)]


def test_cli_generate_on_a_saved_t5(tokenizer, tmp_path, capsys):
    model = _model("t5-small", tokenizer)
    expected = llmzoo.generate(model, tokenizer, PROMPT, max_new_tokens=NEW)
    llmzoo.save(model, tmp_path, tokenizer=tokenizer)
    assert main(["generate", str(tmp_path), "--prompt", PROMPT, "--max-new-tokens", str(NEW)]) == 0
    assert capsys.readouterr().out == expected + "\n"
