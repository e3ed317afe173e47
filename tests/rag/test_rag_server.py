"""RAG through `llmzoo serve --rag-index`: the openai client names the index in extra_body and
gets the sources beside the choices; an unknown index is a 400."""

from pathlib import Path

import openai
import pytest

from llmzoo.errors import AssetMissingError
from llmzoo.serve import create_app, load_served
from llmzoo.serve.rag import load_indexes
from tests.rag.conftest import PLANTED, QUESTION
from tests.serve.conftest import running


@pytest.fixture(scope="module")
def client(index_dir):
    try:
        served = load_served("smollm2-135m-instruct", max_batch=2, max_queue=2, max_len=1024, compile=False)
    except AssetMissingError as e:
        pytest.skip(str(e))
    with running(create_app({served.name: served}, rag_indexes=load_indexes([str(index_dir)]))) as url:
        yield openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=120)


def test_chat_with_an_index_answers_with_its_sources(client, index_dir):
    ask = dict(model="smollm2-135m-instruct", messages=[{"role": "user", "content": QUESTION}], temperature=0,
               max_tokens=8)
    reply = client.chat.completions.create(**ask, extra_body={"rag": {"index": index_dir.name, "k": 2}})
    sources = reply.model_dump()["sources"]
    assert [s["n"] for s in sources] == [1, 2] and Path(sources[0]["source"]).name == PLANTED
    streamed = list(client.chat.completions.create(**ask, stream=True, extra_body={"rag": {"index": index_dir.name}}))
    assert Path(streamed[0].model_dump()["sources"][0]["source"]).name == PLANTED
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)  # and the text follows
    with pytest.raises(openai.BadRequestError, match="unknown RAG index"):
        client.chat.completions.create(**ask, extra_body={"rag": {"index": "/etc"}})
