"""lm-eval's OpenAI completions backend (`local-completions`) scoring through `llmzoo serve`: echo +
logprobs with max_tokens=1, token-id prompts, the last logprob dropped (lm-eval's parse_logprobs).
Its log-likelihoods equal lm-eval's in-process llmzoo backend on the same checkpoint."""

import pytest

from tests.serve.conftest import serve

pytest.importorskip("lm_eval")


def test_lm_eval_scores_through_the_server_as_in_process(tiny_dir):
    from lm_eval.api.instance import Instance
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    from llmzoo.eval.lm_eval_adapter import LlmzooLM

    with serve(tiny_dir, max_batch=4) as url:
        remote = LocalCompletionsAPI(base_url=url + "/completions", model="tiny", tokenizer=str(tiny_dir),
                                     tokenizer_backend="huggingface", max_length=128, num_concurrent=1,
                                     max_retries=1)
        pairs = [("the garden river", " flows past"), ("the children play", " by the water"), ("summer", "\n")]
        requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
        got = remote.loglikelihood(requests)
    want = LlmzooLM(source=str(tiny_dir)).loglikelihood(requests)
    assert [g[1] for g in got] == [w[1] for w in want]
    assert [g[0] for g in got] == pytest.approx([w[0] for w in want], abs=1e-4)
