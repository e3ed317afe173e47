"""Request bodies of the OpenAI API, as pydantic models (https://platform.openai.com/docs/api-reference).

Unknown fields are refused (extra="forbid") rather than silently ignored, so a client relying on a
parameter llmzoo does not implement hears about it; fields that exist in the API but are not
implemented here are declared and refused with a clear 400 in app.py (`unsupported`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Stop = str | list[str] | None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamOptions(_Body):
    include_usage: bool = False


class ContentPart(_Body):
    type: Literal["text"]
    text: str


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None  # an assistant's calls, in OpenAI's shape
    tool_call_id: str | None = None  # a tool message: the call it answers

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class _Sampling(_Body):
    model: str
    temperature: float = Field(1.0, ge=0.0, le=2.0)  # OpenAI's default; 0 is greedy (see _Sampling.check)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=1)  # an extension (as vLLM's), not in OpenAI's API
    # an extension (CTRL's penalty, Keskar et al. 2019); bounded so scaled logits stay finite in float32
    repetition_penalty: float = Field(1.0, ge=0.01, le=100.0)
    n: int = Field(1, ge=1, le=16)
    stop: Stop = None
    seed: int | None = Field(None, ge=-(2 ** 63), le=2 ** 63 - 1 - 16)  # torch seeds are int64; n adds up to 15
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    logit_bias: dict[str, Annotated[float, Field(ge=-100.0, le=100.0)]] | None = None  # token id -> bias
    user: str | None = None

    @field_validator("temperature")
    @classmethod
    def check(cls, value: float) -> float:
        # logits / temperature overflows float32 (inf - inf = nan in the softmax) for a tiny temperature
        if 0 < value < 1e-6:
            raise ValueError("temperature must be 0 (greedy) or at least 1e-6")
        return value

    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class RagOptions(_Body):
    """An extension: answer from an index the server was started with (`llmzoo serve --rag-index`)."""
    index: str  # the index's name (its directory's name) or the path it was given to the server as
    k: int = Field(4, ge=1, le=32)


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    rag: RagOptions | None = None  # an extension (send it with the openai client's extra_body)


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int = Field(16, ge=0)  # OpenAI's default for /v1/completions; 0 with echo scores the prompt
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=5)
    suffix: str | None = None
    best_of: int | None = Field(None, ge=1)
    response_format: dict[str, Any] | None = None  # an extension: chat's JSON mode for completions too


class EmbeddingRequest(_Body):
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None
