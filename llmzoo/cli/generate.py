"""`llmzoo generate` and `llmzoo chat` (`llmzoo convert` lives in llmzoo/cli/convert.py)."""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator

from llmzoo.errors import LlmzooError

DTYPES = ("float32", "bfloat16", "float16")


def register(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("generate", help="complete a prompt with a model")
    g.add_argument("source", help="zoo name, HF checkpoint directory, llmzoo directory or .gguf file")
    g.add_argument("--prompt", required=True, help="text to complete ('-' reads standard input)")
    _sampling_args(g)
    g.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template")
    g.add_argument("--system", help="system message (with --chat)")
    g.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    g.add_argument("--no-stream", action="store_true", help="print the completion only when done")
    g.add_argument("--speculative", metavar="DRAFT",
                   help="speculative decoding (the same greedy text; sampling draws from the same distribution): "
                        "'prompt-lookup' (drafts copied from the text), "
                        "'layers:N' (the model's first N layers) or a draft model source with the same "
                        "tokenizer; the acceptance rate goes to stderr")
    g.add_argument("--attention-sinks", type=int, metavar="N",
                   help="keep the first N tokens and a rolling window in the cache (StreamingLLM): generate past "
                        "the model's context in bounded memory")
    g.add_argument("--window", type=int, metavar="W", help="tokens the rolling cache holds with --attention-sinks "
                                                          "(default: the model's context)")
    g.add_argument("--draft-tokens", type=int, metavar="K",
                   help="tokens drafted per model forward with --speculative (default 10 for prompt-lookup, 5 for a model)")
    g.set_defaults(func=cmd_generate)

    c = sub.add_parser("chat", help="interactive chat using the model's chat template (streams replies)")
    c.add_argument("source")
    c.add_argument("--system", help="system message")
    c.add_argument("--tools", metavar="FILE.py",
                   help="a Python file whose public functions the model may call (type hints give the schema, "
                        "the docstring's first line the description); results go back to the model")
    _sampling_args(c, default_max=256)
    c.set_defaults(func=cmd_chat)


def _sampling_args(p: argparse.ArgumentParser, default_max: int = 128) -> None:
    p.add_argument("--max-new-tokens", type=int, default=default_max)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    p.add_argument("--seed", type=int)
    p.add_argument("--dtype", choices=DTYPES, default=None, help="compute dtype (default float32)")
    add_adapter_arg(p)
    add_quant_arg(p)
    compiled = p.add_mutually_exclusive_group()
    compiled.add_argument("--compile", dest="compile", action="store_true", default=None,
                          help="decode through the compiled step (torch.compile; the default from 512 new tokens, "
                               "or when this process compiled it already)")
    compiled.add_argument("--no-compile", dest="compile", action="store_false", help="decode eagerly")


def add_adapter_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--adapter", metavar="DIR", help="a PEFT adapter (peft's format, e.g. a fine-tune's adapter/) "
                                                    "applied to the model; methods that do not merge (prompt or "
                                                    "prefix tuning) are used this way")


def add_quant_arg(p: argparse.ArgumentParser) -> None:
    # no argparse `choices`: a bad name is a one-line LlmzooError from llmzoo.load, not a usage dump
    p.add_argument("--quant", metavar="KIND", help="run the matmuls on quantized weights: gguf (a .gguf file's own "
                                                   "blocks), int8 (per output row) or int4 (groups of 32)")


def _dtype(name: str | None):
    import torch

    return getattr(torch, name) if name else None


def _load(source: str, dtype: str | None, adapter: str | None = None, quant: str | None = None):
    import llmzoo

    model = llmzoo.load(source, dtype=_dtype(dtype), adapter=adapter, quant=quant)
    try:
        tokenizer = llmzoo.load_tokenizer(source)
    except LlmzooError as e:
        raise LlmzooError(f"{source} has no usable tokenizer ({e})") from None
    return model, tokenizer


def _sampling_kwargs(args: argparse.Namespace) -> dict:
    return dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                top_p=args.top_p, repetition_penalty=args.repetition_penalty, seed=args.seed, compile=args.compile)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def cmd_generate(args: argparse.Namespace) -> int:
    import llmzoo

    if args.system is not None and not args.chat:  # checked before loading the model
        raise LlmzooError("--system goes into the chat template; add --chat (or leave --system out)")
    _check_sampling(args)
    if args.draft_tokens is not None and args.speculative is None:
        raise LlmzooError("--draft-tokens goes with --speculative; add --speculative prompt-lookup (or layers:N, "
                          "or a draft model)")
    if args.draft_tokens is not None and args.draft_tokens < 1:
        raise LlmzooError(f"--draft-tokens must be a whole number >= 1, got {args.draft_tokens}")
    if args.window is not None and args.attention_sinks is None:
        raise LlmzooError("--window sizes the rolling cache of --attention-sinks; add --attention-sinks 4")
    if args.attention_sinks is not None and args.speculative is not None:
        raise LlmzooError("--attention-sinks and --speculative cannot be combined yet (a rolling cache cannot "
                          "roll back rejected drafts); drop one")
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    model, tokenizer = _load(args.source, args.dtype, args.adapter, args.quant)
    speculative = {}
    if args.speculative is not None:
        from llmzoo.infer.speculative import SpeculativeStats, load_draft

        speculative = dict(speculative=load_draft(args.speculative, model, tokenizer, _dtype(args.dtype)),
                           num_draft_tokens=args.draft_tokens, speculative_stats=SpeculativeStats())
    stream = None if args.no_stream else _write
    with _notes_on_stderr():
        text = llmzoo.generate(model, tokenizer, prompt, chat=args.chat, system=args.system, stop=args.stop,
                               stream=stream, **_sampling_kwargs(args), **speculative,
                               **({} if args.attention_sinks is None else
                                  dict(attention_sinks=args.attention_sinks, window=args.window)))
        if stream is None:
            _write(text)
        _write("\n")
    if speculative:
        print(f"speculative: {speculative['speculative_stats'].summary()}", file=sys.stderr)
    return 0


def _check_sampling(args: argparse.Namespace) -> None:
    """Refuse bad sampling flags (--temperature nan) before the model loads, not after."""
    from llmzoo.infer.sampling import check_generation_args

    check_generation_args(args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.repetition_penalty)


@contextlib.contextmanager
def _notes_on_stderr() -> Iterator[None]:
    """Warnings raised while generating (the context length cut the reply short) as one line each on
    stderr, after the text, rather than Python's two-line warning with a source location."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        print(f"note: {w.message}", file=sys.stderr)


def cmd_chat(args: argparse.Namespace) -> int:
    _check_sampling(args)
    tools = plan = None
    if args.tools is not None:  # the user's file is checked before the model loads
        from llmzoo.cli.chat_tools import load_tools, tool_plan

        tools = load_tools(args.tools)
        plan = tool_plan(tools)
    model, tokenizer = _load(args.source, args.dtype, args.adapter, args.quant)
    if not getattr(tokenizer, "chat_template", None):
        raise LlmzooError(f"{args.source} has no chat template; use `llmzoo generate` instead")
    history: list[dict] = [{"role": "system", "content": args.system}] if args.system else []
    interactive = sys.stdin.isatty()
    if interactive:
        print("chat with the model; /reset clears the history, /exit (or Ctrl-D) quits", file=sys.stderr)
    while True:
        if interactive:
            _write("you> ")
        line = sys.stdin.readline()
        if not line:
            break
        line = line.strip()
        if not line:
            continue
        if line in ("/exit", "/quit"):
            break
        if line == "/reset":
            history = history[:1] if args.system else []
            continue
        history.append({"role": "user", "content": line})
        if interactive:
            _write("model> ")
        with _notes_on_stderr():
            if tools is not None:
                _write(_tool_turn(model, tokenizer, history, tools, plan, _sampling_kwargs(args)))
            else:
                text = tokenizer.apply_chat_template(history, add_generation_prompt=True)
                reply = _complete_rendered(model, tokenizer, text, _write, _sampling_kwargs(args))
                history.append({"role": "assistant", "content": reply})
            _write("\n")
    return 0


def _tool_turn(model, tokenizer, history: list[dict], tools: dict, plan, kwargs: dict) -> str:
    """One user turn with tools: not streamed, since a reply is known to be a call only once parsed."""
    from llmzoo.cli.chat_tools import run_turn
    from llmzoo.serve.tool_calls import render

    def generate(messages: list[dict]) -> str:
        return _complete_rendered(model, tokenizer, render(tokenizer, messages, plan), None, kwargs)

    return run_turn(history, generate, tools, plan)


def _complete_rendered(model, tokenizer, rendered: str, stream, kwargs: dict) -> str:
    """Generate from an already templated conversation (no second template pass)."""
    from llmzoo.infer.generate import generate

    return generate(model, tokenizer, rendered, stream=stream, chat=False, _prompt_has_special_tokens=True, **kwargs)
