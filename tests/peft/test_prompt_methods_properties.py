"""Properties of prompt tuning, P-tuning, prefix tuning and LLaMA-Adapter on a tiny LLaMA:
LLaMA-Adapter is a no-op at init (zero gate); an optimizer step moves the adapter and leaves every
base weight as it was; disabled equals the base; greedy KV-cached generation equals the argmax of
full forwards (a padded batch included); the loss given targets equals the cross-entropy of the
returned logits (virtual positions predict nothing); bad input fails in one line."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import llmzoo
import llmzoo.peft
from llmzoo.cli import main
from llmzoo.errors import LlmzooError
from llmzoo.infer.generate import generate_ids
from tests.peft.peers import LLAMA, PEERS, base_checkpoint

METHODS = {
    "prompt_tuning": {"num_virtual_tokens": 4},
    "p_tuning": {"num_virtual_tokens": 4, "encoder_hidden_size": 32, "encoder_reparameterization_type": "LSTM"},
    "prefix_tuning": {"num_virtual_tokens": 4, "prefix_projection": True, "encoder_hidden_size": 32},
    "adaption_prompt": {"adapter_len": 4, "adapter_layers": 2},
}


@pytest.fixture
def base(tmp_path):
    _, inputs = base_checkpoint(PEERS["llama"], tmp_path / "base")
    return tmp_path / "base", inputs["input_ids"]


def _adapted(base_dir, method: str):
    model = llmzoo.load(base_dir)
    torch.manual_seed(0)
    llmzoo.peft.apply(model, method, **METHODS[method])
    with torch.no_grad():  # open LLaMA-Adapter's zero gate so that the adapter does something
        for name, p in model.named_parameters():
            if name.endswith("adaption_gate"):
                p.fill_(0.5)
    return model


def test_llama_adapter_is_a_no_op_at_init(base):
    base_dir, ids = base
    model = llmzoo.load(base_dir)
    with torch.no_grad():
        before = model(ids).logits
        llmzoo.peft.apply(model, "adaption_prompt", adapter_len=4, adapter_layers=2)
        torch.testing.assert_close(model(ids).logits, before, rtol=0, atol=0)


@pytest.mark.parametrize("method", METHODS)
def test_step_trains_the_adapter_only_and_disabled_is_the_base(base, method):
    base_dir, ids = base
    model = _adapted(base_dir, method)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert trained and frozen and all("layers.0.mlp" not in n for n in trained)
    with torch.no_grad():
        base_logits = llmzoo.load(base_dir)(ids).logits
        with llmzoo.peft.disabled(model):
            torch.testing.assert_close(model(ids).logits, base_logits)
        assert not torch.allclose(model(ids).logits, base_logits, atol=1e-4)
    targets = torch.roll(ids, -1, dims=1)
    loss = model(ids, targets=targets).loss
    with torch.no_grad():  # virtual positions carry no target: same loss as on the real tokens' logits
        expected = F.cross_entropy(model(ids).logits.flatten(0, 1), targets.flatten())
    torch.testing.assert_close(loss, expected)
    optimizer = torch.optim.AdamW(llmzoo.peft.trainable_parameters(model), lr=1e-2)
    loss.backward()
    optimizer.step()
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n], before) for n, before in frozen.items())
    assert all(not torch.equal(params[n], before) for n, before in trained.items())


@pytest.mark.parametrize("method", METHODS)
def test_cached_generation_equals_full_forwards(base, method):
    base_dir, ids = base
    model = _adapted(base_dir, method).eval()
    prompts = [ids[0, :5].tolist(), ids[1, :3].tolist()]  # different lengths: a left-padded batch
    got = [g.token_ids for g in generate_ids(model, prompts, max_new_tokens=6)]
    for prompt, new in zip(prompts, got):
        tokens = list(prompt)
        with torch.no_grad():
            for _ in range(6):
                tokens.append(int(model(torch.tensor([tokens])).logits[0, -1].argmax()))
        assert new == tokens[len(prompt):]


def one_line(excinfo) -> str:
    assert "\n" not in str(excinfo.value)
    return str(excinfo.value)


@pytest.mark.parametrize("method, option", [("prompt_tuning", "num_virtual_tokens"),
                                            ("p_tuning", "num_virtual_tokens"),
                                            ("prefix_tuning", "num_virtual_tokens"),
                                            ("adaption_prompt", "adapter_len")])
@pytest.mark.parametrize("value", [0, -3])
def test_non_positive_virtual_tokens(base, method, option, value):
    with pytest.raises(LlmzooError) as e:
        llmzoo.peft.apply(llmzoo.load(base[0]), method, **{option: value})
    assert option in one_line(e) and "positive" in str(e.value)


def test_generation_past_the_context_less_the_virtual_tokens(base):
    model = _adapted(base[0], "prefix_tuning")
    limit = LLAMA["max_position_embeddings"] - 4
    with pytest.raises(LlmzooError) as e:
        generate_ids(model, [[1] * limit], max_new_tokens=2)
    assert f"context of {limit} tokens" in one_line(e) and "4 virtual tokens" in str(e.value)


@pytest.mark.parametrize("field, value, words", [("num_layers", 3, "num_layers=3 but this base has 2 layers"),
                                                 ("token_dim", 48, "token_dim=48 but this base has 32")])
def test_prefix_adapter_for_another_base(tmp_path, base, capsys, field, value, words):
    model = _adapted(base[0], "prefix_tuning")
    llmzoo.peft.save_adapter(model, tmp_path / "adapter")
    path = tmp_path / "adapter" / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), field: value}))
    with pytest.raises(LlmzooError) as e:
        llmzoo.load(base[0], adapter=tmp_path / "adapter")
    assert words in one_line(e)
    assert main(["adapter", "merge", str(base[0]), str(tmp_path / "adapter"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and words in err


def test_prompt_adapters_do_not_merge(base):
    with pytest.raises(LlmzooError) as e:
        llmzoo.peft.merge(_adapted(base[0], "prompt_tuning"))
    assert "cannot be merged" in one_line(e)


ENCODER_METHODS = {k: v for k, v in METHODS.items() if k != "adaption_prompt"}


@pytest.mark.parametrize("family", ["bert_cls", "t5"])
@pytest.mark.parametrize("method", ENCODER_METHODS)
def test_encoder_families_disabled_is_the_base_and_a_step_keeps_the_base(tmp_path, family, method):
    """BERT (a classifier, whose head trains with the prompt as in peft) and T5."""
    from tests.peft.test_prompt_methods_parity import FAMILIES, _base, _output

    fam = FAMILIES[family]
    _, inputs = _base(fam, tmp_path / "base")
    model = llmzoo.load(tmp_path / "base")
    with torch.no_grad():
        base_out = _output(model, fam, inputs)
    llmzoo.peft.apply(model, method, **ENCODER_METHODS[method])
    with torch.no_grad():
        with llmzoo.peft.disabled(model):
            torch.testing.assert_close(_output(model, fam, inputs), base_out)
        assert not torch.allclose(_output(model, fam, inputs), base_out, atol=1e-4)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(n.startswith("virtual_tokens.") or n.startswith("classifier.") for n in trained)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    optimizer = torch.optim.AdamW(llmzoo.peft.trainable_parameters(model), lr=1e-2)
    _output(model, fam, inputs).square().mean().backward()
    optimizer.step()
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n], before) for n, before in frozen.items())


@pytest.mark.parametrize("method", ENCODER_METHODS)
def test_seq2seq_cached_generation_equals_uncached(tmp_path, method):
    from llmzoo.infer.seq2seq import generate_seq2seq

    _, inputs = base_checkpoint(PEERS["t5"], tmp_path / "base")
    model = llmzoo.load(tmp_path / "base")
    llmzoo.peft.apply(model, method, **ENCODER_METHODS[method])
    args = (model, inputs["input_ids"], inputs["attention_mask"])
    with torch.no_grad():
        cached = generate_seq2seq(*args, max_new_tokens=6, use_cache=True)
        full = generate_seq2seq(*args, max_new_tokens=6, use_cache=False)
    torch.testing.assert_close(cached, full, rtol=0, atol=0)


@pytest.mark.parametrize("family", ["bert", "t5"])
def test_llama_adapter_is_decoder_only(tmp_path, family):
    base_checkpoint(PEERS[family], tmp_path / "base")
    with pytest.raises(LlmzooError) as e:
        llmzoo.peft.apply(llmzoo.load(tmp_path / "base"), "adaption_prompt", adapter_len=2)
    assert "decoder" in one_line(e)


@pytest.mark.parametrize("method", METHODS)
def test_adapter_info_describes_prompt_adapters(tmp_path, base, capsys, method):
    llmzoo.peft.save_adapter(_adapted(base[0], method), tmp_path / "adapter")
    assert main(["adapter", "info", str(tmp_path / "adapter")]) == 0
    out = capsys.readouterr().out
    assert ("adapter_len" if method == "adaption_prompt" else "num_virtual_tokens") in out and "4" in out


class _Tokenizer:
    """Stands in for llmzoo's tokenizer: only encode() is used."""

    def encode(self, text: str) -> list[int]:
        return [len(word) for word in text.split()]


def test_prompt_tuning_init_from_text_and_vocabulary(base):
    """peft's TEXT rule: the text's token embeddings, repeated and cut to n; SAMPLE_VOCAB: rows of
    the embedding table."""
    model = llmzoo.load(base[0])
    table = model.embeddings.tokens.weight.detach().clone()
    llmzoo.peft.apply(model, "prompt_tuning", num_virtual_tokens=5, prompt_tuning_init="TEXT",
                      prompt_tuning_init_text="a tiny prompt", tokenizer=_Tokenizer())
    torch.testing.assert_close(model.virtual_tokens.tokens(), table[[1, 4, 6, 1, 4]], rtol=0, atol=0)
    model = llmzoo.load(base[0])
    llmzoo.peft.apply(model, "prompt_tuning", num_virtual_tokens=6, prompt_tuning_init="SAMPLE_VOCAB")
    rows = model.virtual_tokens.tokens().detach()
    assert all(any(torch.equal(row, t) for t in table) for row in rows)
    with pytest.raises(LlmzooError) as e:
        llmzoo.peft.apply(llmzoo.load(base[0]), "prompt_tuning", prompt_tuning_init="TEXT")
    assert "prompt_tuning_init_text" in one_line(e)


def test_prompt_adapter_for_another_kind_of_model(tmp_path, base):
    """A CAUSAL_LM prompt of the right width on a BERT base (same d_model) is refused, not misapplied."""
    llmzoo.peft.save_adapter(_adapted(base[0], "prompt_tuning"), tmp_path / "adapter")
    base_checkpoint(PEERS["bert_bare"], tmp_path / "bert")
    with pytest.raises(LlmzooError) as e:
        llmzoo.load(tmp_path / "bert", adapter=tmp_path / "adapter")
    assert "CAUSAL_LM adapter is for a decoder model" in one_line(e) and "encoder" in str(e.value)


@pytest.mark.parametrize("method", METHODS)
def test_a_few_steps_lower_the_loss(base, method):
    """Training reaches the adapter through the hooks: 30 AdamW steps on one batch lower its loss."""
    base_dir, ids = base
    model = _adapted(base_dir, method)
    optimizer = torch.optim.AdamW(llmzoo.peft.trainable_parameters(model), lr=3e-2)
    targets = torch.roll(ids, -1, dims=1)
    losses = []
    for _ in range(30):
        loss = model(ids, targets=targets).loss
        losses.append(float(loss))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < losses[0] - 0.1, losses


def test_packed_rows_are_refused(base):
    base_dir, ids = base
    model = _adapted(base_dir, "prompt_tuning")
    with pytest.raises(LlmzooError) as e:
        model(ids, document_ids=torch.zeros_like(ids))
    assert "document_ids" in one_line(e) and "pad" in str(e.value)


@pytest.mark.parametrize("method", METHODS)
def test_eval_harness_scores_with_the_adapter(base, method):
    """llmzoo eval's scorer (shared contexts included) gives each continuation the log-likelihood
    of a full forward of the adapted model."""
    from llmzoo.eval.lm import EvalLM

    model = _adapted(base[0], method).eval()

    class Tokenizer:
        bos_token_id, eos_token_id = 1, 2

    pairs = [([5, 6, 7, 8], [9, 10]), ([5, 6, 7, 8], [11, 12, 13]), ([20, 21], [22])]
    got = EvalLM(model, Tokenizer(), batch_size=2).score_tokens(pairs)
    for (ctx, cont), result in zip(pairs, got):
        with torch.no_grad():
            logprobs = model(torch.tensor([ctx + cont])).logits[0].log_softmax(-1)
        expected = sum(float(logprobs[len(ctx) - 1 + i, t]) for i, t in enumerate(cont))
        assert result.logprob == pytest.approx(expected, abs=1e-4)
