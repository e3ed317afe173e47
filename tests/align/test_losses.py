"""llmzoo.align's pieces: sequence log-probs against transformers on the same weights; the losses
against their papers' definitions and properties (trl parity comes with the trainers)."""

import math

import pytest
import torch
import torch.nn.functional as F
import transformers

import llmzoo
from llmzoo.align import dpo_loss, gae, reward_loss, sequence_logps
from llmzoo.errors import LlmzooError
from llmzoo.models.build import build_model
from llmzoo.models.zoo import get_config

SHAPE = dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, head_dim=8, d_ff=64, max_seq_len=32)


def test_sequence_logps_equal_transformers_on_the_same_weights(tmp_path):
    torch.manual_seed(0)
    model = build_model(get_config("llama-2-7b").replace(**SHAPE, n_kv_heads=2)).eval()
    llmzoo.save(model, tmp_path / "hf", format="hf")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ids = torch.randint(0, 64, (3, 10), generator=torch.Generator().manual_seed(1))
    labels = ids.clone()
    labels[:, :4] = -100  # the prompt
    labels[2, 8:] = -100  # a shorter response
    with torch.no_grad():
        ours = sequence_logps(model, ids, labels)
        logits = theirs(ids).logits[:, :-1]
        per_token = -F.cross_entropy(logits.transpose(1, 2), labels[:, 1:], reduction="none", ignore_index=-100)
    torch.testing.assert_close(ours, per_token.sum(-1), atol=1e-5, rtol=1e-5)


def test_sequence_logps_of_an_encoder_decoder_score_the_decoder_labels():
    torch.manual_seed(0)
    model = build_model(get_config("t5-small").replace(**SHAPE)).eval()
    src, dec = torch.randint(2, 64, (2, 7)), torch.randint(2, 64, (2, 5))
    labels = torch.cat((dec[:, 1:], torch.ones(2, 1, dtype=torch.long)), dim=1)
    labels[1, 3:] = -100
    with torch.no_grad():
        ours = sequence_logps(model, src, labels, decoder_input_ids=dec)
        logp = model(src, dec).logits.log_softmax(-1)
    want = [sum(float(logp[b, t, labels[b, t]]) for t in range(5) if labels[b, t] != -100) for b in range(2)]
    torch.testing.assert_close(ours, torch.tensor(want), atol=1e-5, rtol=1e-5)


def test_reward_loss_is_bradley_terry():
    chosen, rejected = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 0.0, 3.0])
    want = sum(-math.log(1 / (1 + math.exp(-(c - r)))) for c, r in zip(chosen.tolist(), rejected.tolist())) / 3
    assert reward_loss(chosen, rejected).item() == pytest.approx(want)
    assert reward_loss(torch.zeros(4), torch.zeros(4)).item() == pytest.approx(math.log(2))  # a coin flip
    assert reward_loss(chosen, rejected, margin=1.0).item() == pytest.approx(reward_loss(chosen - 1, rejected).item())


def _logps(requires_grad=False):
    g = torch.Generator().manual_seed(0)
    return [(-torch.rand(4, generator=g) * 10).requires_grad_(requires_grad) for _ in range(4)]


def test_dpo_sigmoid_loss_and_rewards_are_the_papers():
    pc, pr, rc, rr = _logps()
    loss, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta=0.1)
    h = (pc - rc) - (pr - rr)
    torch.testing.assert_close(loss, -F.logsigmoid(0.1 * h).mean())
    torch.testing.assert_close(chosen, 0.1 * (pc - rc))
    torch.testing.assert_close(rejected, 0.1 * (pr - rr))
    _, chosen2, _ = dpo_loss(pc, pr, rc, rr, beta=0.3)  # beta scales the implicit reward
    torch.testing.assert_close(chosen2, 3 * chosen)
    # policy == reference: every variant of the sigmoid loss is log 2
    for loss_type in ("sigmoid", "robust"):
        assert dpo_loss(rc, rr, rc, rr, loss_type=loss_type, label_smoothing=0.2)[0].item() == pytest.approx(math.log(2))


def test_dpo_gradient_raises_the_chosen_and_lowers_the_rejected():
    pc, pr, rc, rr = _logps(requires_grad=True)
    for loss_type in ("sigmoid", "ipo", "robust"):
        pc.grad = pr.grad = None
        dpo_loss(pc, pr, rc.detach(), rr.detach(), loss_type=loss_type, label_smoothing=0.1 if loss_type == "robust" else 0)[0].backward()
        h = ((pc - rc) - (pr - rr)).detach()
        if loss_type == "ipo":  # IPO pulls h to 1/(2 beta), from either side
            assert torch.all(torch.sign(pc.grad) == torch.sign(h - 5.0))
        else:
            assert torch.all(pc.grad < 0) and torch.all(pr.grad > 0)


def test_ipo_hinge_and_label_smoothing():
    pc, pr, rc, rr = _logps()
    h = (pc - rc) - (pr - rr)
    torch.testing.assert_close(dpo_loss(pc, pr, rc, rr, beta=0.5, loss_type="ipo")[0], ((h - 1.0) ** 2).mean())
    torch.testing.assert_close(dpo_loss(pc, pr, rc, rr, beta=0.5, loss_type="hinge")[0], torch.relu(1 - 0.5 * h).mean())
    smoothed = dpo_loss(pc, pr, rc, rr, label_smoothing=0.25)[0]
    torch.testing.assert_close(smoothed, (-0.75 * F.logsigmoid(0.1 * h) - 0.25 * F.logsigmoid(-0.1 * h)).mean())
    with pytest.raises(LlmzooError, match="sigmoid, ipo, hinge, robust"):
        dpo_loss(pc, pr, rc, rr, loss_type="kto")


def test_gae_reduces_to_monte_carlo_and_td():
    g = torch.Generator().manual_seed(0)
    rewards, values = torch.rand(2, 6, generator=g), torch.rand(2, 6, generator=g)
    adv, ret = gae(rewards, values, gamma=1.0, lam=1.0)  # lam = 1: reward-to-go minus the value
    torch.testing.assert_close(adv, rewards.flip(-1).cumsum(-1).flip(-1) - values)
    torch.testing.assert_close(ret, adv + values)
    adv, _ = gae(rewards, values, gamma=0.9, lam=0.0)  # lam = 0: one-step TD errors
    next_values = torch.cat((values[:, 1:], torch.zeros(2, 1)), dim=1)
    torch.testing.assert_close(adv, rewards + 0.9 * next_values - values)
    adv, _ = gae(rewards, values, gamma=0.9, lam=0.8)  # the definition, summed directly
    delta = rewards + 0.9 * next_values - values
    want = torch.stack([sum((0.9 * 0.8) ** k * delta[:, t + k] for k in range(6 - t)) for t in range(6)], dim=1)
    torch.testing.assert_close(adv, want)


def test_sequence_logps_scoring_only_labelled_positions_equals_the_full_logits():
    """llmzoo decoders send only the labelled positions through the head; the sums and their gradients
    equal the full-logits log-softmax over every position (what an HF model goes through)."""
    import torch.nn.functional as F

    from llmzoo.config import ModelConfig
    from llmzoo.models.build import build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=32,
                                    logit_scale=0.5))
    ids = torch.randint(0, 50, (3, 12))
    mask = torch.ones_like(ids)
    mask[2, 9:] = 0
    labels = ids.clone()
    labels[:, :5] = -100
    labels[2, 9:] = -100
    fast = sequence_logps(model, ids, labels, attention_mask=mask)
    fast.sum().backward()
    fast_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    logits = model(ids, attention_mask=mask).logits[:, :-1].float()
    keep = labels[:, 1:] != -100
    slow = (F.log_softmax(logits, -1).gather(-1, labels[:, 1:].clamp_min(0)[..., None])[..., 0] * keep).sum(-1)
    slow.sum().backward()
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    for fast_grad, p in zip(fast_grads, model.parameters()):
        torch.testing.assert_close(fast_grad, p.grad, atol=1e-5, rtol=1e-4)
