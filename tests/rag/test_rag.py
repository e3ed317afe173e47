"""`llmzoo rag index` / `llmzoo rag ask` as users run them, on real all-MiniLM-L6-v2 embeddings
and the real SmolLM2-135M-Instruct."""

import json
from pathlib import Path

import pytest
import torch

import llmzoo
from llmzoo.cli import main
from llmzoo.errors import AssetMissingError, LlmzooError
from llmzoo.rag import chunk_text, load_index, recall_at_k
from tests.rag.conftest import DOCS, FACT, LABELLED, PLANTED, QUESTION


def test_word_chunks_overlap_and_cover_the_document():
    words = [f"w{i}" for i in range(50)]
    chunks = chunk_text(" ".join(words), "d", size=12, overlap=4)
    assert [c.start for c in chunks] == list(range(0, 50 - 4, 8))
    for a, b in zip(chunks, chunks[1:]):
        assert a.text.split()[-4:] == b.text.split()[:4]  # neighbours share `overlap` words
    assert sorted({w for c in chunks for w in c.text.split()}, key=lambda w: int(w[1:])) == words


def test_token_chunks_use_the_embedders_tokens(index_dir):
    from llmzoo.rag.embedder import load_embedder

    tokenizer = load_embedder("all-minilm-l6-v2")[1]
    text = DOCS["chess.txt"]
    chunks = chunk_text(text, "d", size=8, overlap=2, unit="tokens", tokenizer=tokenizer)
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert [c.start for c in chunks] == list(range(0, len(ids) - 2, 6))
    assert chunks[0].text == tokenizer.decode(ids[:8]).strip()


def test_manifest_names_the_embedder_chunking_and_sources(index_dir, docs):
    manifest = json.loads((index_dir / "manifest.json").read_text())
    assert manifest["embedder"] == "all-minilm-l6-v2" and manifest["dim"] == 384
    assert manifest["chunking"] == {"unit": "words", "size": 16, "overlap": 4}
    assert sorted(Path(s["path"]).name for s in manifest["sources"]) == sorted(DOCS)
    index = load_index(index_dir)
    # the stored vectors are the embedder's own (mean pooling + L2 norm), as `llmzoo.embed` gives
    model, tokenizer = llmzoo.load("all-minilm-l6-v2"), llmzoo.load_tokenizer("all-minilm-l6-v2")
    want = llmzoo.embed(model, tokenizer, [c.text for c in index.chunks[:3]])
    torch.testing.assert_close(index.vectors[:3], want, atol=1e-5, rtol=1e-4)


def test_the_planted_fact_is_retrieved_first(index_dir):
    hits = load_index(index_dir).search(QUESTION, k=3)
    assert Path(hits[0].chunk.source).name == PLANTED and FACT in hits[0].chunk.text


def test_recall_at_k_on_paraphrased_topics_is_high(index_dir, docs):
    index = load_index(index_dir)
    labelled = [(q, str(docs / name)) for q, name in LABELLED]
    at1, at3 = recall_at_k(index, labelled, 1), recall_at_k(index, labelled, 3)
    print(f"recall@1 {at1:.2f}, recall@3 {at3:.2f} over {len(labelled)} questions")
    assert at1 >= 5 / 6 and at3 == 1.0


def test_rag_ask_answers_with_the_planted_source(index_dir, capsys):
    try:
        llmzoo.load_tokenizer("smollm2-135m-instruct")
    except AssetMissingError as e:
        pytest.skip(str(e))
    assert main(["rag", "ask", str(index_dir), "--model", "smollm2-135m-instruct", QUESTION, "--k", "2",
                 "--max-new-tokens", "24", "--json"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert Path(reply["sources"][0]["source"]).name == PLANTED and FACT in reply["sources"][0]["text"]
    assert [s["n"] for s in reply["sources"]] == [1, 2]
    # Not asserted: whether a 135M model copies the fact. Reported, for docs/serving.md.
    print(f"answer contains {FACT}: {FACT in reply['answer']}; answer: {reply['answer']!r}")


def test_index_built_with_another_embedder_is_one_line_exit_2(index_dir, capsys):
    code = main(["rag", "ask", str(index_dir), "--model", "smollm2-135m-instruct", QUESTION,
                 "--embedder", "bert-base-uncased"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "all-minilm-l6-v2" in err and "bert-base-uncased" in err


def test_bad_index_and_docs_are_one_line_exit_2(tmp_path, capsys):
    assert main(["rag", "ask", str(tmp_path), "--model", "smollm2-135m-instruct", QUESTION]) == 2
    assert main(["rag", "index", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "i")]) == 2
    assert main(["rag", "index", str(tmp_path), "--out", str(tmp_path / "i"), "--chunk-overlap", "200"]) == 2
    errs = capsys.readouterr().err.strip().splitlines()
    assert len(errs) == 3 and all(e.startswith("error: ") for e in errs)
    with pytest.raises(LlmzooError, match="overlap"):
        chunk_text("a b c", "d", size=4, overlap=4)
