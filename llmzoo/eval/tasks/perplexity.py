"""`ppl:PATH`: rolling loglikelihood of a UTF-8 text file, as one document (lm-eval's
`loglikelihood_rolling`, like its wikitext task): word_perplexity, byte_perplexity, bits_per_byte."""

from __future__ import annotations

from pathlib import Path

from llmzoo.errors import LlmzooError
from llmzoo.eval import metrics
from llmzoo.eval.requests import LoglikelihoodRolling, RollingResult
from llmzoo.eval.tasks import Task, register_prefix


class FilePerplexity(Task):
    metrics = ("word_perplexity", "byte_perplexity", "bits_per_byte")
    output = "loglikelihood_rolling"
    eval_split = "file"

    def __init__(self, path: str) -> None:
        if not path:
            raise LlmzooError("ppl: needs a file, e.g. --tasks ppl:corpus.txt")
        self.path = Path(path)
        self.name = f"ppl:{path}"
        self.source = f"text file {path}"

    def docs(self) -> list[dict]:
        if not self.path.is_file():
            raise LlmzooError(f"ppl: {self.path} is not a file")
        try:
            text = self.path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise LlmzooError(f"ppl: {self.path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
        if not text.strip():
            raise LlmzooError(f"ppl: {self.path} is empty")
        return [{"text": text}]

    def doc_to_text(self, doc: dict) -> str:
        return ""

    def requests(self, doc: dict, context) -> list[LoglikelihoodRolling]:
        return [LoglikelihoodRolling(doc["text"])]

    def score(self, doc: dict, results: list[RollingResult]) -> dict[str, float]:
        (r,) = results
        return {"ll": r.logprob, "words": metrics.count_words(doc["text"]),
                "bytes": metrics.count_bytes(doc["text"]), "tokens": r.n_tokens}

    def aggregate(self, per_doc: list[dict[str, float]]) -> dict[str, float]:
        lls = [d["ll"] for d in per_doc]
        n_bytes = [int(d["bytes"]) for d in per_doc]
        return {"word_perplexity": metrics.weighted_perplexity(lls, [int(d["words"]) for d in per_doc]),
                "byte_perplexity": metrics.weighted_perplexity(lls, n_bytes),
                "bits_per_byte": metrics.bits_per_byte(lls, n_bytes),
                "token_perplexity": metrics.weighted_perplexity(lls, [int(d["tokens"]) for d in per_doc])}


register_prefix("ppl", FilePerplexity)
