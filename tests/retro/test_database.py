"""RETRO's neighbour database and frozen retriever (Borgeaud et al. 2022, section 2.3), with the real
all-MiniLM-L6-v2 and GPT-2 tokenizer: `llmzoo retro index` through the CLI, the files it writes (safetensors +
JSON, no pickle), retrieval of a planted passage with its continuation, a training row never retrieving its
own text, and the wrong-embedder refusal (training through the loop: test_task.py)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from llmzoo.cli import main
from llmzoo.config import ModelConfig
from llmzoo.errors import AssetMissingError, LlmzooError
from llmzoo.models.retro import build_retro
from llmzoo.models.retro_config import RetroConfig, retro_layers
from llmzoo.retro import load_db, retrieve, retrieve_db_rows

M = 16  # tokens per chunk: small, so a short text makes several chunks
PLANTED = ("The Zebra Library opened in the year 1921 and its secret launch code is 7341, known only to the head "
           "librarian, who keeps it written on a card inside a hollow copy of an old atlas of the northern seas.")
FILLER = [
    "Honey bees live in hives. Worker bees collect nectar from flowers and turn it into honey for the winter.",
    "A volcano erupts when molten rock called magma rises from deep inside the earth and pours out as lava.",
    "Chess is a board game for two players; each starts with sixteen pieces and tries to checkmate the king.",
    "To bake bread, mix flour, water, yeast and salt into a dough, let it rise, then bake it in a hot oven.",
]


@pytest.fixture(scope="module")
def tokenizer():
    import llmzoo

    try:
        from llmzoo.rag.embedder import load_embedder

        load_embedder("all-minilm-l6-v2")
        return llmzoo.load_tokenizer("gpt2")
    except AssetMissingError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def db_dir(tokenizer, tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "a.txt").write_text(" ".join(FILLER[:2]) + " " + PLANTED, encoding="utf-8")
    (folder / "b.txt").write_text(" ".join(FILLER[2:]), encoding="utf-8")
    out = tmp_path_factory.mktemp("retro") / "db"
    assert main(["retro", "index", str(folder), "--out", str(out), "--chunk", str(M)]) == 0
    return out


def test_index_writes_safetensors_and_json(db_dir):
    assert sorted(p.name for p in db_dir.iterdir()) == ["db.json", "db.safetensors"]
    meta = json.loads((db_dir / "db.json").read_text())
    assert (meta["embedder"], meta["tokenizer"], meta["chunk"]) == ("all-minilm-l6-v2", "gpt2", M)
    db = load_db(db_dir, embedder="all-minilm-l6-v2")
    assert db.keys.shape == (meta["n_chunks"], 384) and len(db.tokens) // M == meta["n_chunks"]
    torch.testing.assert_close(db.keys.norm(dim=-1), torch.ones(len(db.keys)))  # unit rows: dot = cosine


def test_a_planted_passage_is_retrieved_with_its_continuation(db_dir, tokenizer):
    db = load_db(db_dir)
    # the query: the planted passage's first chunk as a model's sequence holds it (not aligned with the
    # database's chunks, which were cut from a longer document)
    query = torch.tensor([tokenizer.encode(PLANTED, add_special_tokens=False)[:M]])
    neighbours = retrieve(db, tokenizer, query, k=1)
    assert neighbours.shape == (1, 1, 1, 2 * M)  # chunk and continuation
    start = next(i for i in range(len(db.keys)) if torch.equal(db.values(torch.tensor(i)), neighbours[0, 0, 0]))
    assert "Zebra" in tokenizer.decode(db.tokens[start * M : (start + 1) * M].tolist())  # the key chunk
    assert torch.equal(neighbours[0, 0, 0, M:], db.tokens[(start + 1) * M : (start + 2) * M])  # its continuation


def test_training_rows_never_retrieve_their_own_text(db_dir):
    db = load_db(db_dir)
    seq = 2 * M
    starts = torch.arange(0, len(db.tokens) - seq - 1, M)
    neighbours = retrieve_db_rows(db, starts, seq, k=2)
    assert neighbours.shape == (len(starts), 2, 2, 2 * M)
    for row, s in enumerate(starts.tolist()):
        own = set(range(s, s + seq + 1))
        for value in neighbours[row].reshape(-1, 2 * M):
            i = next(i for i in range(len(db.keys)) if torch.equal(db.values(torch.tensor(i)), value))
            assert not own & set(range(i * M, i * M + 2 * M))


def test_another_embedder_is_refused_in_one_line_exit_2(db_dir, tmp_path, capsys):
    assert main(["retro", "search", str(db_dir), "launch code", "--embedder", "bert-base"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "all-minilm-l6-v2" in err and "bert-base" in err
    corpus = tmp_path / "c.txt"
    corpus.write_text(PLANTED)
    assert main(["retro", "index", str(corpus), "--out", str(db_dir), "--embedder", "bert-base"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "all-minilm-l6-v2" in err
    with pytest.raises(LlmzooError, match="built with the embedder"):
        load_db(db_dir, embedder="bert-base")


def test_search_prints_the_planted_passage_first(db_dir, capsys):
    assert main(["retro", "search", str(db_dir), "What is the secret launch code of the Zebra Library?", "--k", "1"]) == 0
    assert "Zebra" in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["--chunk", "0"], "--chunk must be >= 1"),
    (["--chunk", "100000"], "fewer than one chunk"),
])
def test_index_mistakes_are_one_line_exit_2(db_dir, tmp_path, capsys, argv, words):
    corpus = tmp_path / "c.txt"
    corpus.write_text(PLANTED)
    assert main(["retro", "index", str(corpus), "--out", str(tmp_path / "db"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and words in err


def test_index_of_a_missing_corpus_is_one_line_exit_2(tmp_path, capsys):
    assert main(["retro", "index", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "db")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_generation_retrieves_each_chunk_once_complete(db_dir, tokenizer):
    # Greedy decoding with incremental retrieval equals, token by token, the argmax of a full forward whose
    # neighbours are retrieved for the whole prefix at once (the paper's sampling, section 2.4).
    from llmzoo.retro.generate import generate

    db = load_db(db_dir)
    V = tokenizer.vocab_size
    decoder = ModelConfig(vocab_size=V, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=4 * M,
                          cross_attentions=retro_layers(2, start=2), cca_chunk=M, cca_memory_dim=32)
    encoder = ModelConfig(arch="encoder", head="none", position="learned", vocab_size=V, d_model=32, n_layers=1,
                          n_heads=4, d_ff=64, max_seq_len=2 * M)
    torch.manual_seed(0)
    model = build_retro(RetroConfig("g", decoder, encoder)).eval()
    with torch.no_grad():  # loud CCA, so a neighbour retrieved wrong or late would change the argmax
        model.decoder.layers[1].chunked_cross_attn.o_proj.weight.mul_(100)
    prompt = torch.tensor([tokenizer.encode(PLANTED, add_special_tokens=False)[: M - 2]])
    out = generate(model, db, tokenizer, prompt, max_new_tokens=M + 4)
    assert out.shape == (1, 2 * M + 2)
    with torch.no_grad():
        for t in range(prompt.shape[1], out.shape[1]):
            logits = model(out[:, :t], neighbours=retrieve(db, tokenizer, out[:, :t], k=2)).logits
            assert int(logits[0, -1].argmax()) == int(out[0, t])
        noise = torch.randint(0, V, (1, out.shape[1] // M, 2, 2 * M))
        changed = model(out, neighbours=noise).logits[0, M - 1 :].argmax(-1) != model(
            out, neighbours=retrieve(db, tokenizer, out, k=2)).logits[0, M - 1 :].argmax(-1)
        assert bool(changed.any())  # the neighbours do steer these argmaxes
