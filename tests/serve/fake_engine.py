"""A scripted stand-in for llmzoo.Engine: each request replies with the next scripted text (as the
tokenizer's tokens, through the real engine Request, so stop strings and streaming behave as with
the engine), optionally one token every `delay` seconds; `prompts` records what each was given."""

import collections
import threading
import time

from llmzoo.infer.engine_request import Request
from llmzoo.infer.sampling import check_generation_args


class ScriptedEngine:
    def __init__(self, tokenizer, script: list[str], *, delay: float = 0.0, max_len: int = 100_000) -> None:
        self.tokenizer, self.script, self.delay = tokenizer, collections.deque(script), delay
        self.max_batch, self.max_queue, self.max_len = 8, 8, max_len
        self.waiting: collections.deque = collections.deque()
        self.rows: list = [None] * self.max_batch
        self.prompts: list = []
        self.active: set = set()  # requests still emitting: empty again once all are finished or cancelled
        self.requests: list[Request] = []
        self._thread, self._closed = None, False
        self.failed = False  # the real Engine's flag: a scripted engine never dies

    def reply(self, *texts: str) -> None:
        """The next requests reply with these texts in order, the last one for every request after."""
        self.script.clear()
        self.script.extend(texts)

    def submit(self, prompt, *, max_tokens=128, seed=None, stop=None, **_) -> Request:
        self.prompts.append(prompt)
        ids = prompt if isinstance(prompt, list) and all(isinstance(t, int) for t in prompt) else [1]
        request = Request(list(ids), check_generation_args(max_tokens, 0.0, None, None, 1.0), max_tokens,
                          [s for s in stop or [] if s], seed, decoder=self.tokenizer.stream_decoder())
        text = self.script.popleft() if len(self.script) > 1 else self.script[0]
        self.active.add(id(request))
        self.requests.append(request)
        threading.Thread(target=self._emit, args=(request, text), daemon=True).start()
        return request

    def _emit(self, request: Request, text: str) -> None:
        try:
            for token in self.tokenizer.encode(text, add_special_tokens=False):
                if request.cancelled:
                    request.finish("cancelled")
                    return
                if self.delay:
                    time.sleep(self.delay)
                if request.accept(token):
                    return
            request.finish("eos")
        finally:
            self.active.discard(id(request))

    def close(self) -> None:
        self._closed = True
