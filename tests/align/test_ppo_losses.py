"""One PPO update's pieces on a 2-token toy, against the same step computed by hand with floats
(InstructGPT's per-token KL penalty, GAE, the clipped surrogate and value losses), and padding
changing nothing."""

import math

import pytest
import torch

from llmzoo.align.ppo import kl_penalized_rewards, masked_gae, ppo_losses, whiten

OLD, REF, NEW = [-1.0, -2.0], [-1.5, -1.0], [-0.8, -2.3]
V_OLD, V_NEW, SCORE, KL_COEF, GAMMA, LAM, CLIP, CLIP_V = [0.5, 1.0], [0.9, 1.05], 2.0, 0.1, 1.0, 0.9, 0.2, 0.2


def _by_hand():
    kl = [o - r for o, r in zip(OLD, REF)]
    rewards = [-KL_COEF * kl[0], -KL_COEF * kl[1] + SCORE]
    delta1 = rewards[1] + GAMMA * 0.0 - V_OLD[1]
    delta0 = rewards[0] + GAMMA * V_OLD[1] - V_OLD[0]
    adv = [delta0 + GAMMA * LAM * delta1, delta1]
    ret = [adv[0] + V_OLD[0], adv[1] + V_OLD[1]]
    ratio = [math.exp(n - o) for n, o in zip(NEW, OLD)]
    surrogate = [max(-a * r, -a * min(max(r, 1 - CLIP), 1 + CLIP)) for a, r in zip(adv, ratio)]
    clipped = [vo + min(max(vn - vo, -CLIP_V), CLIP_V) for vn, vo in zip(V_NEW, V_OLD)]
    vloss = [max((vn - R) ** 2, (vc - R) ** 2) for vn, vc, R in zip(V_NEW, clipped, ret)]
    return {"kl": kl, "rewards": rewards, "adv": adv, "ret": ret, "policy_loss": sum(surrogate) / 2,
            "value_loss": 0.5 * sum(vloss) / 2, "approx_kl": 0.5 * sum((n - o) ** 2 for n, o in zip(NEW, OLD)) / 2,
            "clipfrac": sum(abs(r - 1) > CLIP for r in ratio) / 2}


@pytest.mark.parametrize("pad", [0, 2])
def test_one_ppo_step_equals_the_hand_computed_one(pad):
    t = lambda xs, fill=0.0: torch.tensor([xs + [fill] * pad], dtype=torch.float64)  # noqa: E731
    mask = t([1.0, 1.0])
    hand = _by_hand()
    rewards, kl = kl_penalized_rewards(torch.tensor([SCORE], dtype=torch.float64), t(OLD, -7.0), t(REF, -3.0), mask, KL_COEF)
    torch.testing.assert_close(kl, t(hand["kl"]))
    torch.testing.assert_close(rewards, t(hand["rewards"]))
    adv, ret = masked_gae(rewards, t(V_OLD, 5.0), mask, GAMMA, LAM)
    torch.testing.assert_close(adv, t(hand["adv"]))
    torch.testing.assert_close(ret, t(hand["ret"]))
    out = ppo_losses(t(NEW, -9.0), t(OLD, -7.0), adv, t(V_NEW, 4.0), t(V_OLD, 5.0), ret, mask, clip_range=CLIP,
                     clip_range_value=CLIP_V, vf_coef=0.1)
    for key in ("policy_loss", "value_loss", "approx_kl", "clipfrac"):
        assert out[key].item() == pytest.approx(hand[key], abs=1e-12), key
    assert out["loss"].item() == pytest.approx(hand["policy_loss"] + 0.1 * hand["value_loss"], abs=1e-12)


def test_a_positive_advantage_raises_the_tokens_probability_inside_the_clip():
    logp = torch.tensor([[-1.0]], requires_grad=True)
    out = ppo_losses(logp, torch.tensor([[-1.0]]), torch.tensor([[1.0]]), torch.zeros(1, 1), torch.zeros(1, 1),
                     torch.zeros(1, 1), torch.ones(1, 1))
    out["policy_loss"].backward()
    assert logp.grad.item() < 0  # descending the loss raises log pi


def test_whitened_advantages_have_zero_mean_and_unit_variance_over_the_mask():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    w = whiten(x, mask)
    real = w[mask.bool()]
    assert real.mean().item() == pytest.approx(0.0, abs=1e-6) and real.std().item() == pytest.approx(1.0, abs=1e-4)
    assert w[0, 3].item() == 0.0
