"""Packed rows: no attention and no target crosses from one conversation into the next, so a packed
conversation's logits equal those of the conversation run alone; padded rows likewise."""

from __future__ import annotations

import io

import torch

from llmzoo.finetune.sft_rows import IGNORE, PackedRows, PaddedRows, fit_to_length, pack
from llmzoo.finetune.sft_task import SFTTask
from llmzoo.finetune.sft_template import TokenizedConversation
from tests.finetune.sft_helpers import tiny_model

VOCAB = 97


def _conversation(n: int, seed: int, answer: int) -> TokenizedConversation:
    ids = torch.randint(1, VOCAB, (n,), generator=torch.Generator().manual_seed(seed)).tolist()
    return TokenizedConversation(ids, [False] * (n - answer) + [True] * answer)


CONVERSATIONS = [_conversation(n, seed, answer) for seed, (n, answer) in enumerate([(9, 3), (14, 2), (6, 2), (11, 4)])]


def test_packed_conversations_compute_as_if_alone():
    model = tiny_model(VOCAB)
    rows = PackedRows(CONVERSATIONS, seq_len=32, pad_id=0)
    assert [len(g) for g in rows.groups] == [3, 1]  # 9+14+6 fit in 32, 11 more would not
    batch = rows.rows([0, 1])
    with torch.no_grad():
        packed = model(**SFTTask().model_inputs(batch)).logits
        for r, group in enumerate(rows.groups):
            start = 0
            for c in group:
                alone = model(input_ids=torch.tensor([c.ids])).logits[0]
                torch.testing.assert_close(packed[r, start:start + len(c.ids)], alone, rtol=1e-5, atol=1e-5)
                start += len(c.ids)


def test_without_document_ids_the_second_conversation_would_see_the_first():
    # the property above is not vacuous: plain causal attention over the packed row changes the logits
    model = tiny_model(VOCAB)
    batch = PackedRows(CONVERSATIONS, seq_len=32, pad_id=0).rows([0])
    with torch.no_grad():
        plain = model(input_ids=batch["input_ids"]).logits[0, 9:23]
        alone = model(input_ids=torch.tensor([CONVERSATIONS[1].ids])).logits[0]
    assert not torch.allclose(plain, alone, atol=1e-3)


def test_labels_are_next_tokens_of_target_positions_only_and_never_cross_conversations():
    batch = PackedRows(CONVERSATIONS, seq_len=32, pad_id=0).rows([0])
    labels, positions, documents = batch["labels"][0].tolist(), batch["position_ids"][0], batch["document_ids"][0]
    first, second = CONVERSATIONS[0], CONVERSATIONS[1]
    assert labels[:9] == [IGNORE] * 5 + first.ids[6:] + [IGNORE]  # the last token predicts nothing
    assert labels[9:23] == [IGNORE] * 11 + second.ids[12:] + [IGNORE]
    assert labels[29:] == [IGNORE] * 3  # padding
    assert positions[:9].tolist() == list(range(9)) and positions[9:23].tolist() == list(range(14))
    assert documents.tolist() == [0] * 9 + [1] * 14 + [2] * 6 + [3] * 3


def test_padded_rows_hold_one_conversation_each_with_the_same_logits():
    model = tiny_model(VOCAB)
    rows = PaddedRows(CONVERSATIONS, pad_id=0)
    batch = rows.rows([2, 1])
    assert batch["input_ids"].shape == (2, 14)  # padded to the longest of the two
    with torch.no_grad():
        padded = model(**SFTTask().model_inputs(batch)).logits
        alone = model(input_ids=torch.tensor([CONVERSATIONS[2].ids])).logits[0]
    torch.testing.assert_close(padded[0, :6], alone, rtol=1e-5, atol=1e-5)
    assert batch["labels"][0, 6:].eq(IGNORE).all()


def test_sft_loss_is_the_token_mean_over_targets():
    model = tiny_model(VOCAB)
    batch = PackedRows(CONVERSATIONS, seq_len=32, pad_id=0).rows([0, 1])
    outputs = model(**SFTTask().model_inputs(batch))
    loss = SFTTask().loss(outputs, batch)
    flat = torch.nn.functional.cross_entropy(outputs.logits.reshape(-1, VOCAB), batch["labels"].reshape(-1),
                                             ignore_index=IGNORE)
    torch.testing.assert_close(loss, flat)
    assert int(batch["labels"].ne(IGNORE).sum()) == sum(c.targets[1:].count(True) for c in CONVERSATIONS)


def test_long_conversations_are_truncated_with_a_note_and_dropped_when_no_target_is_left():
    out = io.StringIO()
    kept = fit_to_length(CONVERSATIONS, seq_len=10, out=out)
    # 14 tokens (targets in its last 2) loses every target; 11 tokens keeps 3 of its 4 targets
    assert [len(c.ids) for c in kept] == [9, 6, 10]
    assert out.getvalue().strip() == ("note: 2 of 4 conversations are longer than seq_len=10 tokens and were "
                                      "truncated (1 dropped: no assistant token left)")
    assert pack(kept, 10) == [[kept[0]], [kept[1]], [kept[2]]]
