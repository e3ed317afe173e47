"""The tokenizer.ggml.* metadata llmzoo writes (llmzoo.convert.gguf_tokenizer).

Live references: llama.cpp's own converter output (its ggml-vocab-*.gguf files and the packaged
SmolLM2 GGUF): the metadata rebuilt from the tokenizer llmzoo reads out of such a file must be the
file's own; and a GGUF written from a tokenizer directory must read back (llmzoo's reader, the
inverse) as a tokenizer that encodes, decodes and renders chat the same.
"""

from __future__ import annotations

import pytest

import llmzoo
from llmzoo.convert.gguf import write_gguf
from llmzoo.convert.gguf_format import GGUFFile
from llmzoo.convert.gguf_tokenizer import tokenizer_metadata
from llmzoo.errors import CheckpointError, LlmzooError
from llmzoo.tokenizer.spm import TokenType
from tests.convert.gguf_export_helpers import CHAT, TEXTS, asset, llama_cpp_vocab, smollm2_gguf

# keys llama.cpp's converter writes that describe the vocabulary (not derived flags it may leave out)
VOCAB_KEYS = ("tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
              "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
              "tokenizer.ggml.padding_token_id", "tokenizer.ggml.seperator_token_id", "tokenizer.ggml.cls_token_id",
              "tokenizer.ggml.mask_token_id", "tokenizer.chat_template")


def _same_vocabulary(path, skip=()):
    original = GGUFFile(path).metadata
    ours = tokenizer_metadata(llmzoo.load_tokenizer(path))
    for key in VOCAB_KEYS:
        if key not in skip:
            assert ours.get(key) == original.get(key), key
    return ours, original


@pytest.mark.asset
def test_smollm2_metadata_is_the_files_own():
    ours, original = _same_vocabulary(smollm2_gguf())
    assert ours["tokenizer.ggml.pre"] == original["tokenizer.ggml.pre"] == "smollm"  # hinted by the file name
    for flag in ("tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_space_prefix"):
        assert ours[flag] == original[flag], flag


@pytest.mark.asset
@pytest.mark.parametrize("vocab", ["gpt-2", "starcoder", "falcon"])
def test_byte_level_vocabularies_match_llama_cpps_converter(vocab):
    ours, original = _same_vocabulary(llama_cpp_vocab(vocab))
    assert ours["tokenizer.ggml.pre"] == original["tokenizer.ggml.pre"]


@pytest.mark.asset
def test_a_file_without_a_pre_tokenizer_name_gets_llama_cpps_default():
    ours, original = _same_vocabulary(llama_cpp_vocab("gpt-neox"))
    assert "tokenizer.ggml.pre" not in original and ours["tokenizer.ggml.pre"] == "default"


@pytest.mark.asset
def test_sentencepiece_vocabulary_and_scores_that_rank_the_merges():
    path = llama_cpp_vocab("llama-spm")
    ours, original = _same_vocabulary(path, skip=("tokenizer.ggml.merges",))  # the file lists none; we add them
    assert ours["tokenizer.ggml.model"] == "llama" and ours["tokenizer.ggml.add_bos_token"] is True
    assert ours["tokenizer.ggml.add_space_prefix"] is True
    # llama.cpp merges the pair whose result scores highest: an earlier merge must score higher
    scores = dict(zip(ours["tokenizer.ggml.tokens"], ours["tokenizer.ggml.scores"]))
    results = ["".join(m.split(" ", 1)) for m in ours["tokenizer.ggml.merges"][:200]]
    assert all(scores[a] > scores[b] for a, b in zip(results, results[1:]) if a != b)


@pytest.mark.asset
def test_wordpiece_is_spelled_as_llama_cpp_spells_it():
    path = llama_cpp_vocab("bert-bge")
    ours, original = _same_vocabulary(path)
    assert ours["tokenizer.ggml.model"] == "bert"


def _write_with_tokenizer(tokenizer, path, vocab_size=None):
    import transformers

    vocab_size = vocab_size or tokenizer.vocab_size
    config = transformers.LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=1, num_attention_heads=2, tie_word_embeddings=True)
    model = transformers.LlamaForCausalLM(config)
    metadata = tokenizer_metadata(tokenizer, vocab_size=vocab_size)
    write_gguf(config.to_dict(), {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}, path,
               tokenizer_metadata=metadata)
    return path


def _assert_same_tokenizer(ours, back):
    for text in TEXTS:
        ids = ours.encode(text)
        assert back.encode(text) == ids, text
        assert back.decode(ids) == ours.decode(ids), text
        assert back.decode(ids, skip_special_tokens=True) == ours.decode(ids, skip_special_tokens=True), text
    assert back.special_tokens_map == ours.special_tokens_map
    if ours.chat_template:
        assert back.apply_chat_template(CHAT) == ours.apply_chat_template(CHAT)
    assert back.stop_token_ids == ours.stop_token_ids


@pytest.mark.asset
def test_tokenizer_directory_round_trips_through_a_written_gguf(tmp_path):
    """An HF tokenizer directory (tokenizer.json + tokenizer_config.json) -> GGUF -> llmzoo's reader."""
    directory = llmzoo.load_tokenizer(smollm2_gguf()).save(tmp_path / "SmolLM2-135M-Instruct")
    ours = llmzoo.load_tokenizer(directory)
    back = llmzoo.load_tokenizer(_write_with_tokenizer(ours, tmp_path / "model.gguf"))
    _assert_same_tokenizer(ours, back)
    assert back.chat_template == ours.chat_template and "<|im_start|>" in back.chat_template


@pytest.mark.asset
def test_sentencepiece_model_round_trips_through_a_written_gguf(tmp_path):
    ours = llmzoo.load_tokenizer(asset("sentencepiece-test", "test/botchan_en_bpe_1000.model"))
    # this model NFKC-normalizes and collapses spaces; llama.cpp's SentencePiece tokenizer does neither
    with pytest.warns(UserWarning, match="normalizes text"):
        back = llmzoo.load_tokenizer(_write_with_tokenizer(ours, tmp_path / "spm.gguf"))
    for text in ["I am a cat.", "As yet I have no name.", "Where I was born I have no idea!"]:
        assert back.encode(text) == ours.encode(text), text
        assert back.decode(ours.encode(text)) == ours.decode(ours.encode(text))


@pytest.mark.asset
def test_a_model_with_more_rows_than_tokens_gets_unused_padding(tmp_path):
    ours = llmzoo.load_tokenizer(smollm2_gguf())
    metadata = tokenizer_metadata(ours, vocab_size=ours.vocab_size + 64)
    assert metadata["tokenizer.ggml.tokens"][-1] == f"[PAD{ours.vocab_size + 63}]"
    assert set(metadata["tokenizer.ggml.token_type"][ours.vocab_size:]) == {TokenType.UNUSED}
    with pytest.raises(CheckpointError, match="embedding rows"):
        tokenizer_metadata(ours, vocab_size=ours.vocab_size - 1)
    back = llmzoo.load_tokenizer(_write_with_tokenizer(ours, tmp_path / "padded.gguf", ours.vocab_size + 64))
    assert back.encode(TEXTS[1]) == ours.encode(TEXTS[1])


@pytest.mark.asset
def test_token_count_must_match_the_embedding(tmp_path):
    ours = llmzoo.load_tokenizer(smollm2_gguf())
    import transformers

    config = transformers.LlamaConfig(vocab_size=ours.vocab_size + 1, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=1, num_attention_heads=2, tie_word_embeddings=True)
    state = {k: v for k, v in transformers.LlamaForCausalLM(config).state_dict().items() if k != "lm_head.weight"}
    with pytest.raises(CheckpointError, match="one token per row"):
        write_gguf(config.to_dict(), state, tmp_path / "x.gguf", tokenizer_metadata=tokenizer_metadata(ours))


def test_unigram_is_refused_with_one_clear_line():
    import tokenizers

    from llmzoo.tokenizer.base import Tokenizer

    backend = tokenizers.Tokenizer(tokenizers.models.Unigram([("<unk>", 0.0), ("a", -1.0)], unk_id=0))
    with pytest.raises(LlmzooError, match="Unigram tokenizer") as e:
        tokenizer_metadata(Tokenizer(backend))
    assert "\n" not in str(e.value)
