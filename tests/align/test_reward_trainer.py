"""The reward task's loss against trl 1.16's RewardTrainer.compute_loss on the same tiny model and batch,
and the value head's save/load and pooling properties.

The model: a tiny LLaMA saved by llmzoo in transformers' layout; transformers reads it as
LlamaForSequenceClassification (num_labels=1, a fresh `score`), llmzoo reads the same directory and
gets that `score` copied into its value head, so both score with identical weights. (llmzoo's
converter does not read a *ForSequenceClassification checkpoint itself; the head is copied by hand.)
"""

import pytest
import torch
import transformers

import llmzoo
from llmzoo.align.reward_task import RewardTask
from llmzoo.errors import LlmzooError
from llmzoo.models.build import build_model
from llmzoo.models.value_head import (attach_value_head, has_value_head, load_value_model, save_value_model,
                                      value_forward)
from llmzoo.models.zoo import get_config
from tests.align.tiny_lm import tiny_llama_and_tokenizer

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

PAIRS = [{"prompt": "the cat", "chosen": " sat on the mat", "rejected": " ran"},
         {"prompt": "the dog", "chosen": " ran by the river", "rejected": " sat in the park by the mat"}]


@pytest.fixture(scope="module")
def pair_of_models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reward")
    config, tokenizer = tiny_llama_and_tokenizer(tmp)
    torch.manual_seed(0)
    llmzoo.save(build_model(config).eval(), tmp / "lm", format="hf", tokenizer=tokenizer)
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(tmp / "lm")
    hf_tokenizer.eos_token, hf_tokenizer.pad_token = "[SEP]", "[PAD]"
    torch.manual_seed(1)
    theirs = transformers.AutoModelForSequenceClassification.from_pretrained(tmp / "lm", num_labels=1)
    theirs.config.pad_token_id = hf_tokenizer.pad_token_id
    ours = attach_value_head(llmzoo.load(tmp / "lm", dtype=torch.float32))
    with torch.no_grad():
        ours.score.weight.copy_(theirs.score.weight)
    return ours.eval(), theirs.eval(), hf_tokenizer, tmp


def test_reward_loss_equals_trls_reward_trainer(pair_of_models):
    ours, theirs, hf_tokenizer, tmp = pair_of_models
    args = trl.RewardConfig(output_dir=str(tmp / "out"), per_device_train_batch_size=2, report_to=[], use_cpu=True,
                            max_steps=1, center_rewards_coefficient=None)
    trainer = trl.RewardTrainer(model=theirs, args=args, processing_class=hf_tokenizer,
                                train_dataset=datasets.Dataset.from_list(PAIRS))
    batch = next(iter(trainer.get_train_dataloader()))  # the chosen rows, then the rejected, right-padded
    assert (batch["attention_mask"] == 0).any()  # padding is exercised: the last real token must be found
    trainer.model.eval()
    with torch.no_grad():
        expected = trainer.compute_loss(trainer.model, dict(batch)).item()
        ids, mask = batch["input_ids"], batch["attention_mask"]
        half = ids.shape[0] // 2
        task = RewardTask()
        rows = {"chosen_input_ids": ids[:half], "rejected_input_ids": ids[half:],
                "chosen_attention_mask": mask[:half], "rejected_attention_mask": mask[half:]}
        rewards = task.forward(ours, rows)
        loss = task.loss(rewards, rows).item()
        their_rewards = theirs(input_ids=ids, attention_mask=mask).logits[:, 0]
    torch.testing.assert_close(rewards, their_rewards, atol=1e-5, rtol=1e-4)
    assert loss == pytest.approx(expected, abs=1e-5)


def test_pooled_score_ignores_padding_and_reads_the_last_token(pair_of_models):
    ours = pair_of_models[0]
    ids = torch.tensor([[5, 6, 7, 8]])
    padded = torch.tensor([[5, 6, 7, 8, 0, 0]])
    with torch.no_grad():
        alone = value_forward(ours, ids)
        with_pad = value_forward(ours, padded, attention_mask=torch.tensor([[1, 1, 1, 1, 0, 0]]))
    torch.testing.assert_close(with_pad["rewards"], alone["rewards"])
    torch.testing.assert_close(alone["rewards"], alone["values"][:, -1])  # the sequence's score is its last token's value


def test_value_model_saves_beside_the_stack_and_loads_back(pair_of_models, tmp_path):
    ours = pair_of_models[0]
    path = save_value_model(ours, tmp_path / "rm")
    plain = llmzoo.load(path)  # the directory is also the plain model
    assert not has_value_head(plain)
    back = load_value_model(path)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        torch.testing.assert_close(value_forward(back.eval(), ids)["rewards"], value_forward(ours, ids)["rewards"])


def test_a_model_without_value_head_is_one_clear_error(pair_of_models):
    with pytest.raises(LlmzooError, match="has no value head"):
        load_value_model(pair_of_models[3] / "lm")
    with pytest.raises(LlmzooError, match="has no value head"):
        value_forward(llmzoo.load(pair_of_models[3] / "lm"), torch.tensor([[1, 2]]))


def test_an_encoder_value_head_scores_the_first_token():
    config = get_config("bert-base-uncased").replace(vocab_size=64, d_model=32, n_layers=2, n_heads=4, d_ff=64,
                                                     max_seq_len=32, head="none", pooler=None)
    torch.manual_seed(0)
    encoder = attach_value_head(build_model(config).eval(), seed=0)
    with torch.no_grad():
        out = value_forward(encoder, torch.tensor([[2, 5, 6, 3, 0]]), attention_mask=torch.tensor([[1, 1, 1, 1, 0]]))
    assert encoder.value_head_pooling == "first"
    torch.testing.assert_close(out["rewards"], out["values"][:, 0])
