"""llmzoo models inside lm-eval-harness: `--model llmzoo`.

lm-eval (0.4.13) finds models only in its own registry. This module registers `llmzoo` there when
imported; lm-eval's own `lm_eval` command finds it through the start-up hook `make setup` installs
(llmzoo/eval/lm_eval_plugin.py), and running this module runs lm-eval's command line without the hook:

    lm_eval --model llmzoo --model_args source=smollm2-135m-instruct --tasks piqa,arc_easy --limit 20
    python -m llmzoo.eval.lm_eval_adapter --model llmzoo --model_args source=smollm2-135m-instruct \\
        --tasks piqa,arc_easy --limit 20

    # or from Python
    import lm_eval, llmzoo.eval.lm_eval_adapter
    lm_eval.simple_evaluate(model="llmzoo", model_args="source=smollm2-135m-instruct", tasks=["piqa"])

Requests are answered by llmzoo.eval.lm.EvalLM, the same code `llmzoo eval` uses, so the two
give the same loglikelihoods. lm-eval is a test dependency (the `test` extra), not a runtime one.
"""

from __future__ import annotations

import sys
from typing import Any

try:
    # lm-eval fills its registry with its own models only when the registry is empty; registering
    # ours first would hide them (`--model hf` unknown), so load them first.
    import lm_eval.models  # noqa: F401
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model
except ImportError as e:  # pragma: no cover - depends on the environment
    from llmzoo.errors import LlmzooError

    raise LlmzooError("the lm-eval adapter needs lm-eval: pip install lm-eval==0.4.13") from e

from llmzoo.eval.lm import EvalLM
from llmzoo.eval.requests import GenerateUntil, Loglikelihood, LoglikelihoodRolling


@register_model("llmzoo")
class LlmzooLM(LM):
    """model_args: source=<zoo name | HF dir | llmzoo dir | .gguf>, dtype=float32|bfloat16|float16;
    or pass model= and tokenizer= objects from Python. lm-eval's batch_size is honoured ("auto": 8)."""

    def __init__(self, source: str | None = None, model: Any = None, tokenizer: Any = None,
                 batch_size: int | str = 8, dtype: str | None = None, **_: Any) -> None:
        super().__init__()
        import torch

        import llmzoo

        if model is None:
            if not source:
                raise ValueError("llmzoo model needs model_args source=<zoo name, directory or .gguf>")
            model = llmzoo.load(source, dtype=getattr(torch, dtype) if dtype else None)
        if tokenizer is None:
            tokenizer = llmzoo.load_tokenizer(source if source else model.tokenizer_source)
        size = int(batch_size) if str(batch_size).isdigit() else 8
        self.lm = EvalLM(model, tokenizer, batch_size=size)
        self.source = source or getattr(model.config, "name", "llmzoo")

    def loglikelihood(self, requests: list, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        answers = self.lm.loglikelihood([Loglikelihood(*r.args) for r in requests])
        return [(a.logprob, a.is_greedy) for a in answers]

    def loglikelihood_rolling(self, requests: list, disable_tqdm: bool = False) -> list[float]:
        return [a.logprob for a in self.lm.loglikelihood_rolling([LoglikelihoodRolling(r.args[0]) for r in requests])]

    def generate_until(self, requests: list, disable_tqdm: bool = False) -> list[str]:
        out = []
        for r in requests:
            context, kwargs = r.args
            until = kwargs.get("until") or []
            until = (until,) if isinstance(until, str) else tuple(until)
            options = {}
            if kwargs.get("do_sample") and float(kwargs.get("temperature", 0) or 0) > 0:
                options["temperature"] = float(kwargs["temperature"])
            request = GenerateUntil(context, until, int(kwargs.get("max_gen_toks", 256)), options)
            out.append(self.lm.generate_until([request])[0][0])
        return out

    @property
    def tokenizer_name(self) -> str:
        return str(self.source).replace("/", "__")

    def apply_chat_template(self, chat_history: list[dict], add_generation_prompt: bool = True) -> str:
        return self.lm.tokenizer.apply_chat_template(chat_history, add_generation_prompt=add_generation_prompt)


def main() -> None:
    """lm-eval's command line, with `--model llmzoo` available."""
    from lm_eval.__main__ import cli_evaluate

    sys.argv[0] = "lm_eval"
    cli_evaluate()


if __name__ == "__main__":
    main()
