"""Prometheus text-format metrics (https://prometheus.io/docs/instrumenting/exposition_formats/):
requests by route and status, prompt and completion tokens, engine queue depth and running rows,
and time to first token as a histogram. Kept by hand: a few counters need no client library."""

from __future__ import annotations

import bisect
import collections
import threading

TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: collections.Counter = collections.Counter()  # (route, status) -> count
        self.prompt_tokens: collections.Counter = collections.Counter()  # model -> tokens
        self.completion_tokens: collections.Counter = collections.Counter()
        self.ttft_buckets: dict[str, list[int]] = {}
        self.ttft_sum: collections.Counter = collections.Counter()
        self.ttft_count: collections.Counter = collections.Counter()

    def request(self, route: str, status: int) -> None:
        with self._lock:
            self.requests[(route, status)] += 1

    def tokens(self, model: str, prompt: int, completion: int) -> None:
        with self._lock:
            self.prompt_tokens[model] += prompt
            self.completion_tokens[model] += completion

    def first_token(self, model: str, seconds: float) -> None:
        with self._lock:
            buckets = self.ttft_buckets.setdefault(model, [0] * (len(TTFT_BUCKETS) + 1))
            buckets[bisect.bisect_left(TTFT_BUCKETS, seconds)] += 1
            self.ttft_sum[model] += seconds
            self.ttft_count[model] += 1

    def render(self, served: dict) -> str:
        lines = ["# HELP llmzoo_requests_total HTTP requests by route and status.",
                 "# TYPE llmzoo_requests_total counter"]
        with self._lock:
            for (route, status), count in sorted(self.requests.items()):
                lines.append(f'llmzoo_requests_total{{route="{route}",status="{status}"}} {count}')
            for metric, counter, help_text in (
                    ("llmzoo_prompt_tokens_total", self.prompt_tokens, "Prompt tokens processed."),
                    ("llmzoo_completion_tokens_total", self.completion_tokens, "Tokens generated.")):
                lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
                lines += [f'{metric}{{model="{m}"}} {v}' for m, v in sorted(counter.items())]
            lines += ["# HELP llmzoo_time_to_first_token_seconds Seconds from request to its first token.",
                      "# TYPE llmzoo_time_to_first_token_seconds histogram"]
            for model, buckets in sorted(self.ttft_buckets.items()):
                cumulative = 0
                for bound, count in zip((*TTFT_BUCKETS, "+Inf"), buckets):
                    cumulative += count
                    lines.append(f'llmzoo_time_to_first_token_seconds_bucket{{model="{model}",le="{bound}"}} '
                                 f'{cumulative}')
                lines.append(f'llmzoo_time_to_first_token_seconds_sum{{model="{model}"}} {self.ttft_sum[model]}')
                lines.append(f'llmzoo_time_to_first_token_seconds_count{{model="{model}"}} '
                             f'{self.ttft_count[model]}')
        lines += ["# HELP llmzoo_queue_depth Requests waiting for an engine row.", "# TYPE llmzoo_queue_depth gauge"]
        engines = [(name, s.engine) for name, s in sorted(served.items()) if s.engine is not None]
        lines += [f'llmzoo_queue_depth{{model="{name}"}} {len(engine.waiting)}' for name, engine in engines]
        lines += ["# HELP llmzoo_running_requests Engine rows in use.", "# TYPE llmzoo_running_requests gauge"]
        lines += [f'llmzoo_running_requests{{model="{name}"}} {sum(r is not None for r in engine.rows)}'
                  for name, engine in engines]
        return "\n".join(lines) + "\n"
