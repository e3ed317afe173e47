"""The real SmolLM2-135M-Instruct (chat) and all-MiniLM-L6-v2 (embeddings) behind one server, and
the README's client snippet run against it."""

import re
from pathlib import Path

import numpy as np
import openai
import pytest
import torch

import llmzoo
from llmzoo.errors import AssetMissingError
from llmzoo.serve import create_app, load_served
from tests.serve.conftest import running

SMOLLM2, MINILM = "smollm2-135m-instruct", "all-minilm-l6-v2"
QUESTION = "What is the capital of France?"
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def server():
    try:
        served = {name: load_served(name, max_batch=2, max_queue=4, max_len=512, compile=False)
                  for name in (SMOLLM2, MINILM)}
    except AssetMissingError as e:
        pytest.skip(str(e))
    with running(create_app(served)) as url:
        yield url, served


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0], api_key="none", max_retries=0, timeout=120)


def test_both_models_are_listed(client):
    assert sorted(m.id for m in client.models.list().data) == [MINILM, SMOLLM2]


def test_smollm2_chat_equals_llmzoo_generate(client, server):
    served = server[1][SMOLLM2]
    want = llmzoo.generate(served.model, served.tokenizer, QUESTION, chat=True, max_new_tokens=16, compile=False)
    reply = client.chat.completions.create(model=SMOLLM2, messages=[{"role": "user", "content": QUESTION}],
                                           temperature=0, max_tokens=16)
    assert reply.choices[0].message.content == want
    assert "Paris" in want


def test_embeddings_equal_llmzoo_embed(client, server):
    served = server[1][MINILM]
    texts = ["A man is eating food.", "The cat sits on the mat outside the house today.", "Paris"]
    want = llmzoo.embed(served.model, served.tokenizer, texts)
    as_base64 = client.embeddings.create(model=MINILM, input=texts)  # the client's default encoding
    as_float = client.embeddings.create(model=MINILM, input=texts, encoding_format="float")
    for reply in (as_base64, as_float):
        got = torch.tensor(np.array([d.embedding for d in reply.data]), dtype=torch.float32)
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    assert as_float.usage.prompt_tokens == sum(len(ids) for ids in served.tokenizer.encode_batch(texts))


def test_chat_on_an_encoder_is_a_400(client):
    with pytest.raises(openai.BadRequestError, match="encoder"):
        client.chat.completions.create(model=MINILM, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="encoder"):
        client.completions.create(model=MINILM, prompt="hi")


def readme_snippet() -> str:
    section = README.read_text().split("## Serving", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_snippet_runs_against_the_server(server, capsys):
    code = readme_snippet()
    assert "http://127.0.0.1:8000/v1" in code
    exec(compile(code.replace("http://127.0.0.1:8000/v1", server[0]), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "Paris" in out
