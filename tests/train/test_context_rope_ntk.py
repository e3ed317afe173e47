"""Static NTK-aware RoPE scaling (bloc97, 2023) has no transformers init function to compare with, so
its defining property is checked instead: base' = base * s^(d/(d-2)) keeps the highest frequency and
divides the lowest by s, exactly what position interpolation does to it, with the frequencies between
interpolated less the higher they are (linear PI divides all of them by s)."""

import torch

from llmzoo.config import RopeScaling
from llmzoo.nn.position import rope_inv_freq


def test_ntk_keeps_the_highest_frequency_and_interpolates_the_lowest_by_the_factor():
    dim, base, s = 64, 10000.0, 4.0
    plain, _ = rope_inv_freq(dim, base, None)
    ntk, scale = rope_inv_freq(dim, base, RopeScaling("ntk", s))
    linear, _ = rope_inv_freq(dim, base, RopeScaling("linear", s))
    assert scale == 1.0
    torch.testing.assert_close(ntk[0], plain[0])
    torch.testing.assert_close(ntk[-1], plain[-1] / s, rtol=1e-5, atol=0)
    torch.testing.assert_close(linear, plain / s)
    ratio = plain / ntk  # how much each frequency is slowed: 1 at the top, s at the bottom, monotone
    assert bool((ratio[1:] >= ratio[:-1]).all()) and bool((ratio <= s + 1e-4).all())
