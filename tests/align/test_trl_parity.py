"""dpo_loss and sequence_logps against trl's DPOTrainer on the same tiny policy, reference and batch:
the loss and the chosen/rejected rewards and log-probs it logs equal ours, for each loss type both
define the same way. (trl's "ipo" averages log-probs over the completion's tokens; Azar et al.'s
and ours sum them, so IPO is left out; trl 1.16's "sigmoid" ignores label_smoothing, ours applies
cDPO's smoothing there, so smoothing is compared through "robust".) Tolerance: trl takes log-probs from a fused LM-head kernel,
which rounds differently from a full log-softmax, by ~1e-3 on a sum of ~25 nats."""

import pytest
import torch
import transformers

import llmzoo
from llmzoo.align import dpo_loss, sequence_logps
from llmzoo.models.build import build_model
from tests.align.tiny_lm import tiny_llama_and_tokenizer

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

PAIRS = [{"prompt": "the cat", "chosen": " sat on the mat", "rejected": " ran in the park"},
         {"prompt": "the dog", "chosen": " ran by the river", "rejected": " sat"}]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dpo")
    config, tokenizer = tiny_llama_and_tokenizer(tmp)
    ours = []
    for seed, name in ((0, "policy"), (1, "reference")):
        torch.manual_seed(seed)
        ours.append(build_model(config).eval())
        llmzoo.save(ours[-1], tmp / name, format="hf", tokenizer=tokenizer)
    theirs = [transformers.AutoModelForCausalLM.from_pretrained(tmp / name) for name in ("policy", "reference")]
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(tmp / "policy")
    hf_tokenizer.eos_token, hf_tokenizer.pad_token = "[SEP]", "[PAD]"
    return ours, theirs, hf_tokenizer, tmp


@pytest.mark.parametrize("loss_type, smoothing", [("sigmoid", 0.0), ("hinge", 0.0), ("robust", 0.1)])
def test_dpo_loss_and_rewards_equal_trls(models, loss_type, smoothing):
    (policy, reference), (hf_policy, hf_reference), hf_tokenizer, tmp = models
    args = trl.DPOConfig(output_dir=str(tmp / "out"), per_device_train_batch_size=2, beta=0.1, loss_type=loss_type,
                         label_smoothing=smoothing, report_to=[], use_cpu=True, max_steps=1)
    trainer = trl.DPOTrainer(model=hf_policy, ref_model=hf_reference, args=args, processing_class=hf_tokenizer,
                             train_dataset=datasets.Dataset.from_list(PAIRS))
    batch = next(iter(trainer.get_train_dataloader()))  # rows: the chosen completions, then the rejected
    trainer.model.eval()
    with torch.no_grad():
        theirs = trainer.compute_loss(trainer.model, batch)
        metrics = {k: v[-1] for k, v in trainer._metrics["eval"].items()}
        labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
        pol = sequence_logps(policy, batch["input_ids"], labels, attention_mask=batch["attention_mask"])
        ref = sequence_logps(reference, batch["input_ids"], labels, attention_mask=batch["attention_mask"])
    loss, chosen, rejected = dpo_loss(pol[:2], pol[2:], ref[:2], ref[2:], beta=0.1, loss_type=loss_type,
                                      label_smoothing=smoothing)
    assert loss.item() == pytest.approx(theirs.item(), abs=5e-4)
    assert chosen.mean().item() == pytest.approx(metrics["rewards/chosen"], abs=2e-4)
    assert rejected.mean().item() == pytest.approx(metrics["rewards/rejected"], abs=2e-4)
    assert pol[:2].mean().item() == pytest.approx(metrics["logps/chosen"], abs=2e-3)
    assert pol[2:].mean().item() == pytest.approx(metrics["logps/rejected"], abs=2e-3)
