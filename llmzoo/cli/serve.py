"""`llmzoo serve SOURCE [SOURCE ...]`: the OpenAI HTTP API (chat, completions, embeddings) on llmzoo models."""

from __future__ import annotations

import argparse
import signal
import sys

from llmzoo.errors import LlmzooError


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("serve", help="serve models over the OpenAI API (chat, completions, embeddings)")
    s.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="zoo name, checkpoint directory or .gguf file; served as its name (a directory's name, "
                        "a file's stem)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on /v1/*")
    s.add_argument("--max-concurrent", type=int, default=8, metavar="N",
                   help="requests decoded together per model (the engine's batch rows; default 8)")
    s.add_argument("--max-queue", type=int, default=64, metavar="M",
                   help="requests waiting for a row before the server answers 429 (default 64)")
    s.add_argument("--max-len", type=int, metavar="T",
                   help="context per request, prompt + completion (default: the model's, at most 4096); the "
                        "KV cache holds max-concurrent x T tokens")
    s.add_argument("--shutdown-timeout", type=float, default=30.0, metavar="S",
                   help="on SIGINT/SIGTERM, seconds in-flight requests get to finish before they are cancelled")
    s.add_argument("--request-timeout", type=float, metavar="S",
                   help="cancel a chat or completion running longer than S seconds, freeing its rows (the client "
                        "gets a 504, or an error event in a stream); default: no limit")
    s.add_argument("--idle-timeout", type=float, metavar="S",
                   help="drop a streaming client that leaves a chunk unread for S seconds and cancel its request")
    s.add_argument("--rag-index", action="append", default=[], metavar="INDEX",
                   help="an index from `llmzoo rag index` that chat requests may name in their `rag` extension "
                        "field (by its directory's name); repeatable")
    s.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    import socket

    import uvicorn

    from llmzoo.serve import create_app, load_served, served_name

    if args.max_concurrent < 1 or args.max_queue < 0 or (args.max_len is not None and args.max_len < 2):
        raise LlmzooError("--max-concurrent must be >= 1, --max-queue >= 0 and --max-len >= 2")
    for flag, value in (("--request-timeout", args.request_timeout), ("--idle-timeout", args.idle_timeout)):
        if value is not None and not value > 0:
            raise LlmzooError(f"{flag} must be a positive number of seconds, got {value}")
    if not 0 <= args.port < 65536:
        raise LlmzooError(f"--port {args.port} is not a TCP port (0-65535)")
    names = [served_name(s) for s in args.sources]
    if len(set(names)) != len(names):
        raise LlmzooError(f"two sources are served under the same name ({', '.join(names)}); rename a directory")
    # Bind before loading the models: a busy port is one line at once, not after a minute of loading.
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        sock.close()
        raise LlmzooError(f"cannot listen on {args.host}:{args.port} ({e.strerror}); pick another --port") from None
    served = {}
    try:
        from llmzoo.serve.rag import load_indexes

        indexes = load_indexes(args.rag_index)  # a bad index is one line before the models load
        for source, name in zip(args.sources, names):
            served[name] = load_served(source, max_batch=args.max_concurrent, max_queue=args.max_queue,
                                       max_len=args.max_len, name=name)
            print(f"loaded {source} as {name!r}", file=sys.stderr)
        app = create_app(served, api_key=args.api_key, request_timeout=args.request_timeout,
                         idle_timeout=args.idle_timeout, rag_indexes=indexes)
        config = uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=args.shutdown_timeout)
        server = uvicorn.Server(config)
        # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal to the handler
        # that was there before; a no-op one makes a requested shutdown exit 0, not die of the signal.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: None)
        sock.listen(128)
        print(f"serving {', '.join(served)} on http://{args.host}:{sock.getsockname()[1]}/v1", file=sys.stderr,
              flush=True)
        server.run(sockets=[sock])
    finally:
        for model in served.values():
            model.close()
        sock.close()
    return 0
