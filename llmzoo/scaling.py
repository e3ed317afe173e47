"""Planning tools: compute-optimal model size (Chinchilla) and memory per device for inference and training.

Chinchilla: Hoffmann et al. 2022 fit L(N, D) = E + A / N^alpha + B / D^beta (Approach 3) and minimise it
under C = 6 N D, which gives N_opt = G (C/6)^a and D_opt = G^-1 (C/6)^b with a = beta / (alpha + beta),
b = alpha / (alpha + beta), G = (alpha A / (beta B))^(1 / (alpha + beta)) (their eq. 4).

Training memory: mixed-precision AdamW keeps 2 (bf16 weights) + 2 (bf16 grads) + 12 (fp32 master weights,
momentum, variance) bytes per parameter; ZeRO (Rajbhandari et al. 2020) partitions the optimizer states
(stage 1), also the gradients (stage 2) and also the weights (stage 3) across data-parallel ranks.
Activations follow Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from llmzoo.config import ModelConfig
from llmzoo.errors import LlmzooError
from llmzoo.flops import count_params

# ------------------------------------------------------------------------------------------------
# Chinchilla


@dataclass(frozen=True)
class LossFit:
    """L(N, D) = E + A / N^alpha + B / D^beta. Defaults: Hoffmann et al. 2022, eq. 10 (as printed)."""

    E: float = 1.69
    A: float = 406.4
    B: float = 410.7
    alpha: float = 0.34
    beta: float = 0.28

    def loss(self, n_params: float, n_tokens: float) -> float:
        return self.E + self.A / n_params**self.alpha + self.B / n_tokens**self.beta

    @property
    def a(self) -> float:  # N_opt grows as C^a
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:  # D_opt grows as C^b
        return self.alpha / (self.alpha + self.beta)

    @property
    def G(self) -> float:
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))


CHINCHILLA_FIT = LossFit()


@dataclass(frozen=True)
class ComputePlan:
    method: str
    compute: float  # FLOPs
    params: float
    tokens: float
    loss: float

    @property
    def tokens_per_param(self) -> float:
        return self.tokens / self.params


def _check_compute(compute: float) -> None:
    if not (compute > 0 and math.isfinite(compute)):
        raise LlmzooError(f"compute budget must be a positive number of FLOPs, got {compute}")


def chinchilla_optimal(compute: float, fit: LossFit = CHINCHILLA_FIT) -> ComputePlan:
    """Compute-optimal (N, D) for `compute` FLOPs from the parametric fit (C = 6 N D)."""
    _check_compute(compute)
    n = fit.G * (compute / 6.0) ** fit.a
    d = (compute / 6.0) ** fit.b / fit.G
    return ComputePlan("parametric fit (Hoffmann et al. 2022, approach 3)", compute, n, d, fit.loss(n, d))


def tokens_per_param_rule(compute: float, ratio: float = 20.0, fit: LossFit = CHINCHILLA_FIT) -> ComputePlan:
    """The rule of thumb D = ratio * N (Chinchilla: 70B params, 1.4T tokens, 20 tokens/param), C = 6 N D."""
    _check_compute(compute)
    n = math.sqrt(compute / (6.0 * ratio))
    return ComputePlan(f"{ratio:g} tokens per parameter", compute, n, ratio * n, fit.loss(n, ratio * n))


def isoflop_curve(compute: float, n_params: list[float], fit: LossFit = CHINCHILLA_FIT) -> list[float]:
    """Predicted loss of each model size trained with exactly `compute` FLOPs (D = C / 6N)."""
    return [fit.loss(n, compute / (6.0 * n)) for n in n_params]


PLOT_FORMATS = (".png", ".pdf", ".svg")


def plot_path(path: str | Path) -> Path:
    """The file a plot named `path` goes to: a .png/.pdf/.svg file as given, `isoflops.png` inside an
    existing directory, `path.png` when there is no suffix (as matplotlib would); other suffixes fail."""
    target = Path(path).expanduser()
    if target.is_dir():
        return target / "isoflops.png"
    if not target.suffix:
        return target.with_name(target.name + ".png")
    if target.suffix.lower() not in PLOT_FORMATS:
        raise LlmzooError(f"cannot write a plot as {str(path)!r}: name a {', '.join(PLOT_FORMATS)} file "
                          "or an existing directory")
    return target


def plot_isoflops(path: str | Path, compute: float, fit: LossFit = CHINCHILLA_FIT) -> Path:
    """Save isoFLOP curves (loss vs model size at fixed compute, as Hoffmann et al. Figure 3) with the
    budget's optimum marked, on a grid of decades from 1e18 (or lower) to 10x the budget.
    Returns the file written (see plot_path)."""
    target = plot_path(path)
    _check_compute(compute)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, hi = min(1e18, compute / 1e3), compute * 10
    budgets = sorted({10.0**e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)} | {compute})
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for c in budgets:
        n_opt = chinchilla_optimal(c, fit).params
        sizes = [n_opt * 10 ** (k / 20) for k in range(-30, 31)]
        ax.plot(sizes, isoflop_curve(c, sizes, fit), lw=2.0 if c == compute else 0.8,
                color="C3" if c == compute else "0.5", label=f"C = {c:.2g} FLOPs" if c == compute else None)
        ax.plot([n_opt], [fit.loss(n_opt, c / (6 * n_opt))], "o", ms=3, color="C0")
    plan = chinchilla_optimal(compute, fit)
    ax.annotate(f"N_opt = {_si(plan.params)}", (plan.params, plan.loss), textcoords="offset points",
                xytext=(5, -15), color="C3")
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("predicted loss L(N, C/6N)")
    ax.set_title("isoFLOP curves, Chinchilla parametric fit")
    ax.legend()
    fig.tight_layout()
    try:
        fig.savefig(target, dpi=120)
    except OSError as e:
        raise LlmzooError(f"cannot write plot {target}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
    return target


# ------------------------------------------------------------------------------------------------
# Memory

BYTES_PER_PARAM = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "int8": 1.0, "int4": 0.5}
# Mixed-precision Adam(W), Rajbhandari et al. 2020 sec. 3.1: 2 + 2 + K with K = 12.
WEIGHT_BYTES, GRAD_BYTES, OPTIMIZER_BYTES = 2.0, 2.0, 12.0


def kv_cache_bytes_per_token(c: ModelConfig, dtype: str = "bf16") -> float:
    """Keys and values of every (decoder) attention layer for one token: 2 * layers * kv_heads * head_dim
    * bytes. SSM layers (Mamba) keep a state of fixed size instead, nothing per token."""
    layers = c.decoder_layers if c.arch == "encoder_decoder" else sum(
        c.mixer_kind(i) == "attention" for i in range(c.n_layers))
    return 2.0 * layers * c.kv_heads * c.hd * BYTES_PER_PARAM[dtype]


def activation_bytes(c: ModelConfig, seq_len: int, micro_batch: int, tp: int = 1, flash: bool = True) -> float:
    """Activations one micro-batch keeps for the backward pass through all layers, in 16-bit
    (Korthikanti et al. 2022, sec. 4.1, generalised to any d_ff / gated MLP / MoE top-k):
    attention 11sbh (+ 5 a s^2 b for the score matrices unless a fused kernel recomputes them),
    MLP 3sbh + 4sbf (gated: + 2sbf more), two norms 4sbh; divided by tp (sequence parallelism)."""
    s, b, h, f, a = seq_len, micro_batch, c.d_model, c.d_ff, c.n_heads
    mlp = 3 * h + (6 if c.mlp_gated else 4) * f
    if c.n_experts:
        mlp *= c.n_experts_per_token
    per_layer = s * b * (11 * h + 4 * h + mlp)
    if not flash:
        per_layer += 5 * a * s * s * b
    layers = c.n_layers + (c.decoder_layers if c.arch == "encoder_decoder" else 0)
    logits = 4.0 * s * b * c.vocab_size  # fp32 logits kept for the cross-entropy backward
    return (layers * per_layer + logits) / tp


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes per device."""

    weights: float
    grads: float
    optimizer: float
    activations: float
    zero: int
    dp: int
    tp: int
    pp: int

    @property
    def total(self) -> float:
        return self.weights + self.grads + self.optimizer + self.activations


def training_memory(
    n_params: float,
    *,
    config: ModelConfig | None = None,
    dp: int = 1,
    tp: int = 1,
    pp: int = 1,
    zero: int = 0,
    micro_batch: int = 1,
    seq_len: int | None = None,
    flash: bool = True,
) -> TrainingMemory:
    """Per-device memory of mixed-precision AdamW training. Tensor and pipeline parallelism split the
    weights tp * pp ways; ZeRO stage `zero` then partitions optimizer states (>= 1), gradients (>= 2)
    and weights (3) over the `dp` data-parallel ranks. With 1F1B pipelining the first stage keeps
    `pp` micro-batches in flight for its n_layers/pp layers: the activations of all layers for one
    micro-batch (Korthikanti et al. 2022, sec. 4.2.3)."""
    for name, value in (("dp", dp), ("tp", tp), ("pp", pp), ("micro-batch", micro_batch)):
        if value < 1:
            raise LlmzooError(f"--{name} must be >= 1, got {value}")
    if zero not in (0, 1, 2, 3):
        raise LlmzooError(f"--zero must be 0, 1, 2 or 3 (ZeRO stages), got {zero}")
    if n_params <= 0:
        raise LlmzooError(f"parameter count must be positive, got {n_params}")
    if config is not None:
        if config.n_heads % tp:
            raise LlmzooError(f"--tp {tp} must divide the {config.n_heads} attention heads of {config.name}")
        if pp > config.n_layers:
            raise LlmzooError(f"--pp {pp} exceeds the {config.n_layers} layers of {config.name}")
    local = n_params / (tp * pp)
    weights = WEIGHT_BYTES * local / (dp if zero >= 3 else 1)
    grads = GRAD_BYTES * local / (dp if zero >= 2 else 1)
    optimizer = OPTIMIZER_BYTES * local / (dp if zero >= 1 else 1)
    activations = 0.0
    if config is not None:
        activations = activation_bytes(config, seq_len or config.max_seq_len, micro_batch, tp, flash)
    return TrainingMemory(weights, grads, optimizer, activations, zero, dp, tp, pp)


def inference_memory(c: ModelConfig) -> dict[str, float]:
    """Weight bytes at each precision (quantisation scales excluded) and KV-cache bytes per token."""
    n = count_params(c)
    out = {f"weights_{dtype}": n * per for dtype, per in BYTES_PER_PARAM.items() if dtype != "fp16"}
    out["kv_cache_per_token_bf16"] = kv_cache_bytes_per_token(c)
    return out


# ------------------------------------------------------------------------------------------------
# Formatting helpers shared by the CLI


def _si(x: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def human_count(x: float | None) -> str:
    """12345678 -> '12.3M' (parameters, tokens)."""
    return "-" if x is None else _si(x)


def human_bytes(x: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.0f} B"


def parse_number(text: str) -> float:
    """'5.76e23', '70B', '1.4T', '7e9', '350M' -> float. Raises LlmzooError on anything else."""
    t = str(text).strip().replace("_", "").replace(",", "")
    scale = {"K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12, "P": 1e15}.get(t[-1:].upper())
    try:
        value = float(t[:-1]) * scale if scale else float(t)
    except ValueError:
        raise LlmzooError(f"not a number: {text!r} (examples: 7e9, 70B, 1.4T, 5.76e23)") from None
    if not math.isfinite(value) or value <= 0:
        raise LlmzooError(f"expected a positive number, got {text!r}")
    return value
