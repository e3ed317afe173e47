"""Mamba's selective state-space mixer (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with
Selective State Spaces", Algorithm 2 and Figure 3).

    x, z   = in_proj(h).chunk(2)                 # two branches of width D = expand * d_model
    x      = silu(causal depthwise conv1d(x))    # local mixing, K taps
    dt,B,C = x_proj(x) split (rank R, N, N)      # the *selective* part: SSM parameters from the input
    dt     = softplus(dt_proj(dt))               # per channel step size, (B, T, D)
    h_t    = exp(dt_t A) h_{t-1} + dt_t B_t x_t  # zero-order-hold discretisation, A = -exp(A_log) (D, N)
    y_t    = C_t h_t + D x_t                     # D: a skip connection per channel
    out    = out_proj(y * silu(z))               # gated by the second branch

The scan is the plain sequential recurrence in torch (no custom kernel): one (B, D, N) update per
token, which is also exactly what one decoding step does, so cached decoding and the full forward
run the same arithmetic. With a cache the conv inputs and h continue from its SSMState.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.errors import LlmzooError
from llmzoo.infer.cache import SSMState
from llmzoo.nn.norm import RMSNorm


class MambaMixer(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        D, N, R, K = config.ssm_inner, config.ssm_state_size, config.ssm_rank, config.ssm_conv_kernel
        self.inner, self.state_size, self.rank, self.kernel = D, N, R, K
        self.in_proj = nn.Linear(config.d_model, 2 * D, bias=config.ssm_proj_bias)
        self.conv1d = nn.Conv1d(D, D, K, groups=D, bias=config.ssm_conv_bias)  # causal padding done in forward
        self.x_proj = nn.Linear(D, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, D, bias=True)
        # S4D-real initialisation (Gu et al. 2022): A_n = -(n + 1); stored as log so A stays negative.
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(D, 1))
        self.D = nn.Parameter(torch.ones(D))
        self.out_proj = nn.Linear(D, config.d_model, bias=config.ssm_proj_bias)
        if config.ssm_inner_norms:  # Jamba: RMSNorm over dt, B and C for stable training at scale
            self.dt_layernorm, self.b_layernorm, self.c_layernorm = (
                RMSNorm(n, config.norm_eps) for n in (R, N, N))

    def _new_state(self, batch: int, max_len: int, dtype: torch.dtype, device: torch.device) -> SSMState:
        return SSMState.empty(batch, self.inner, self.kernel, self.state_size, dtype, device)

    def forward(self, h: torch.Tensor, *, cache=None, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """h (B, T, d_model) -> (B, T, d_model). token_mask (B, T): 0 marks padding, whose inputs are
        zeroed so a left-padded row's state stays empty until its first real token."""
        B, T, _ = h.shape
        state = self._state(cache, B, h)
        keep = token_mask[:, :, None].to(h.dtype) if token_mask is not None else None
        x, z = self.in_proj(h if keep is None else h * keep).chunk(2, dim=-1)  # (B, T, D) each
        x = x.transpose(1, 2)  # (B, D, T): channels first for the conv
        past = state.conv if state is not None else x.new_zeros(B, self.inner, self.kernel - 1)
        window = torch.cat((past, x), dim=-1)  # the K - 1 inputs before this chunk, then the chunk
        if state is not None:
            state.conv.copy_(window[:, :, -(self.kernel - 1):])
        x = F.silu(self.conv1d(window)).transpose(1, 2)  # (B, T, D): a valid conv, one output per new token
        x = x if keep is None else x * keep
        dt, Bm, Cm = self.x_proj(x).split((self.rank, self.state_size, self.state_size), dim=-1)
        if hasattr(self, "dt_layernorm"):
            dt, Bm, Cm = self.dt_layernorm(dt), self.b_layernorm(Bm), self.c_layernorm(Cm)
        dt = F.softplus(dt @ self.dt_proj.weight.t() + self.dt_proj.bias.float())  # (B, T, D)
        y, last = selective_scan(x, dt, -torch.exp(self.A_log.float()), Bm, Cm,
                                 state.ssm if state is not None else None)
        if state is not None:
            state.ssm.copy_(last)
            state.tokens += T
        y = (y + x.float() * self.D.float()).to(h.dtype) * F.silu(z)
        return self.out_proj(y)

    def _state(self, cache, batch: int, h: torch.Tensor) -> SSMState | None:
        if cache is None:
            return None
        state = cache.state(("ssm", self.layer_idx), self._new_state)
        if state.tokens != cache.seq_length:
            raise LlmzooError(f"Mamba layer {self.layer_idx}: the cache is at token {cache.seq_length} but the SSM "
                              f"state has folded in {state.tokens}; an SSM state cannot be rolled back or replayed "
                              f"(speculative decoding and cache cropping need attention-only models)")
        return state


def selective_scan(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, Bm: torch.Tensor, Cm: torch.Tensor,
                   h0: torch.Tensor | None, chunk: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """x, dt (B, T, D); A (D, N); Bm, Cm (B, T, N); h0 (B, D, N) or None -> y (B, T, D) fp32 and the last
    state. Sequential over T, in fp32: the reference recurrence, one step per token (a parallel
    associative scan gives the same numbers up to rounding). The discretised exp(dt A) and dt B x are
    (B, T, D, N), so they are formed `chunk` tokens at a time: a long prompt's memory stays that of
    one chunk (2.8B at 2048 tokens would need 1.3 GB per layer at once)."""
    dt, x, Bm, Cm = dt.float(), x.float(), Bm.float(), Cm.float()
    h = h0.float() if h0 is not None else x.new_zeros(x.shape[0], x.shape[2], A.shape[1])
    ys = []
    for start in range(0, x.shape[1], chunk):
        part = slice(start, start + chunk)
        decay = torch.exp(dt[:, part, :, None] * A)  # exp(dt A), the zero-order-hold discretised A
        drive = (dt[:, part] * x[:, part])[..., None] * Bm[:, part, None, :]  # dt B x
        for t in range(decay.shape[1]):
            h = decay[:, t] * h + drive[:, t]
            ys.append((h @ Cm[:, start + t, :, None])[..., 0])  # C h: (B, D)
    return torch.stack(ys, dim=1), h
