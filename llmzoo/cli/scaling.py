"""`llmzoo scaling flops | chinchilla | memory`: plan a training run before buying the compute."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from llmzoo.errors import LlmzooError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("scaling", help="planning: FLOPs per token, compute-optimal size (Chinchilla), memory per device")
    sub = p.add_subparsers(dest="scaling_command", metavar="SUBCOMMAND", required=True)

    f = sub.add_parser("flops", help="training FLOPs per token: 6N + 6 * layers * seq * d (Kaplan et al. 2020)",
                       description="FLOPs per token of a catalog model (from its config) or of N parameters.")
    f.add_argument("model", nargs="?", help="catalog name (see `llmzoo models`)")
    f.add_argument("--params", help="parameter count instead of a model, e.g. 7e9 or 70B")
    f.add_argument("--n-layers", type=int, default=0, help="with --params: layers, for the attention term")
    f.add_argument("--d-model", type=int, default=0, help="with --params: width, for the attention term")
    f.add_argument("--seq-len", type=int, help="sequence length (default: the model's context)")
    f.add_argument("--tokens", help="also the total for this many training tokens, e.g. 1.4T")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=_flops)

    c = sub.add_parser("chinchilla", help="compute-optimal parameters and tokens for a FLOP budget (Hoffmann et al. 2022)",
                       description="Minimise L(N, D) = E + A/N^alpha + B/D^beta (E=1.69, A=406.4, B=410.7, "
                                   "alpha=0.34, beta=0.28) subject to C = 6ND, and compare with the 20-tokens-"
                                   "per-parameter rule.")
    c.add_argument("--compute", required=True, help="training budget in FLOPs, e.g. 5.76e23 (Gopher/Chinchilla)")
    c.add_argument("--ratio", type=float, default=20.0, help="tokens per parameter for the rule of thumb (default 20)")
    c.add_argument("--plot", metavar="FILE", help="save isoFLOP loss curves to FILE (.png, .pdf or .svg; no "
                   "suffix adds .png) or into an existing directory as isoflops.png")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_chinchilla)

    m = sub.add_parser("memory", help="memory per device to train: weights, grads, AdamW states, activations; ZeRO 0-3",
                       description="Per-device memory of mixed-precision AdamW training (2+2+12 bytes/param) under "
                                   "data (dp), tensor (tp) and pipeline (pp) parallelism and ZeRO stages "
                                   "(Rajbhandari et al. 2020); activations per Korthikanti et al. 2022.")
    m.add_argument("model", nargs="?", help="catalog name (see `llmzoo models`)")
    m.add_argument("--params", help="parameter count instead of a model (no activation estimate)")
    m.add_argument("--dp", type=int, default=1, help="data-parallel ranks (default 1)")
    m.add_argument("--tp", type=int, default=1, help="tensor-parallel ranks (default 1)")
    m.add_argument("--pp", type=int, default=1, help="pipeline stages (default 1)")
    m.add_argument("--zero", type=int, default=0, help="ZeRO stage 0-3 (default 0)")
    m.add_argument("--micro-batch", type=int, default=1, help="sequences per micro-batch (default 1)")
    m.add_argument("--seq-len", type=int, help="sequence length (default: the model's context)")
    m.add_argument("--no-flash", action="store_true", help="attention scores are stored (no fused attention kernel)")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=_memory)


def _model_or_params(args: argparse.Namespace):
    """(config or None, parameter count) from a catalog name or --params."""
    from llmzoo.flops import count_params
    from llmzoo.scaling import parse_number

    if bool(args.model) == bool(args.params):
        raise LlmzooError("give a model name or --params N (one of them)")
    if args.params:
        return None, parse_number(args.params)
    from llmzoo.models.zoo import get_config

    config = get_config(args.model)
    return config, count_params(config)


def _check_seq(seq_len: int | None) -> None:
    if seq_len is not None and seq_len < 1:
        raise LlmzooError(f"--seq-len must be >= 1, got {seq_len}")


def _flops(args: argparse.Namespace) -> int:
    from llmzoo.flops import flops_per_token, training_flops_per_token
    from llmzoo.scaling import human_count, parse_number

    _check_seq(args.seq_len)
    config, n = _model_or_params(args)
    if config is not None:
        fl = flops_per_token(config, args.seq_len)
        out = {"model": config.name, "seq_len": fl.seq_len, "params": n, "matmul_params": fl.params,
               "attention_forward": fl.attention, "forward": fl.forward, "training": fl.training}
    else:
        seq = args.seq_len or 0
        if (args.n_layers or args.d_model) and not (args.n_layers and args.d_model and seq):
            raise LlmzooError("the attention term needs --n-layers, --d-model and --seq-len together")
        training = training_flops_per_token(n, args.n_layers, args.d_model, seq)
        out = {"model": None, "seq_len": seq or None, "params": n, "matmul_params": n,
               "attention_forward": 2 * args.n_layers * seq * args.d_model, "forward": training / 3,
               "training": training}
    if args.tokens:
        d = parse_number(args.tokens)
        out["tokens"] = d
        out["training_total"] = out["training"] * d
        out["training_total_6nd"] = 6 * out["matmul_params"] * d
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    name = out["model"] or f"{human_count(n)} parameters"
    seq_note = f", sequence {out['seq_len']}" if out["seq_len"] else ""
    print(f"{name}{seq_note}")
    print(f"  N (matmul weights per token)  {human_count(out['matmul_params'])}")
    print(f"  forward per token            {out['forward']:.4g} FLOPs  (2N + {out['attention_forward']:.3g} attention)")
    print(f"  training per token           {out['training']:.4g} FLOPs  (6N + 6 L s d)")
    if args.tokens:
        print(f"  training on {human_count(out['tokens'])} tokens     {out['training_total']:.4g} FLOPs "
              f"(6ND alone: {out['training_total_6nd']:.4g})")
    return 0


def _chinchilla(args: argparse.Namespace) -> int:
    from llmzoo.scaling import CHINCHILLA_FIT, chinchilla_optimal, human_count, parse_number, plot_isoflops
    from llmzoo.scaling import tokens_per_param_rule

    compute = parse_number(args.compute)
    if args.ratio <= 0:
        raise LlmzooError(f"--ratio must be > 0, got {args.ratio}")
    plans = [chinchilla_optimal(compute), tokens_per_param_rule(compute, args.ratio)]
    plot = str(plot_isoflops(args.plot, compute)) if args.plot else None  # the file really written
    if args.json:
        print(json.dumps({"compute": compute, "fit": asdict(CHINCHILLA_FIT),
                          "plans": [{**asdict(p), "tokens_per_param": p.tokens_per_param} for p in plans],
                          "plot": plot}, indent=1))
        return 0
    f = CHINCHILLA_FIT
    print(f"compute budget {compute:.3g} FLOPs  (C = 6 N D)")
    print(f"loss fit L(N, D) = {f.E} + {f.A}/N^{f.alpha} + {f.B}/D^{f.beta};  N_opt ~ C^{f.a:.3f}, D_opt ~ C^{f.b:.3f}")
    for p in plans:
        print(f"\n{p.method}")
        print(f"  parameters       {human_count(p.params)}  ({p.params:.3g})")
        print(f"  tokens           {human_count(p.tokens)}  ({p.tokens:.3g}; {p.tokens_per_param:.1f} per parameter)")
        print(f"  predicted loss   {p.loss:.4f}")
    print("\nNote: the parametric fit (approach 3) favours smaller models and more tokens than the paper's "
          "approach 1 (67B, 1.5T tokens at Gopher's 5.76e23), more so with the rounded coefficients printed in "
          "the paper (Besiroglu et al. 2024); the 20:1 rule matches Chinchilla itself.")
    if plot:
        print(f"isoFLOP curves written to {plot}")
    return 0


def _memory(args: argparse.Namespace) -> int:
    from llmzoo.scaling import human_bytes, human_count, training_memory

    _check_seq(args.seq_len)
    config, n = _model_or_params(args)
    kw = dict(config=config, dp=args.dp, tp=args.tp, pp=args.pp, micro_batch=args.micro_batch,
              seq_len=args.seq_len, flash=not args.no_flash)
    chosen = training_memory(n, zero=args.zero, **kw)
    stages = [training_memory(n, zero=z, **kw) for z in range(4)]
    if args.json:
        print(json.dumps({"model": config.name if config else None, "params": n,
                          "chosen": {**asdict(chosen), "total": chosen.total},
                          "zero_stages": [{**asdict(s), "total": s.total} for s in stages]}, indent=1))
        return 0
    name = f"{config.name}: " if config else ""
    seq = args.seq_len or (config.max_seq_len if config else None)
    print(f"{name}{human_count(n)} parameters, dp={args.dp} tp={args.tp} pp={args.pp}, "
          f"micro-batch {args.micro_batch}" + (f", sequence {seq}" if config else ""))
    print("mixed-precision AdamW: bf16 weights (2 B) + bf16 grads (2 B) + fp32 master, m, v (12 B) per parameter\n")
    header = ("ZeRO", "weights", "grads", "optimizer", "activations", "total / device")
    rows = [header] + [
        (f"{s.zero}" + (" *" if s.zero == args.zero else ""), human_bytes(s.weights), human_bytes(s.grads),
         human_bytes(s.optimizer), human_bytes(s.activations) if config else "n/a", human_bytes(s.total))
        for s in stages
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        print("  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths))))
    print("\n* the chosen stage. Stage 1 shards optimizer states over dp, 2 also gradients, 3 also weights.")
    if config is None:
        print("Activations need the model's shape: pass a catalog name instead of --params.")
    return 0
