"""`llmzoo serve`: the OpenAI HTTP API (chat, completions, embeddings) over llmzoo models.

Decoders are served by the continuous-batching engine (llmzoo.infer.engine), so every client's
request shares one running batch; encoders answer /v1/embeddings. `create_app(served)` builds the
FastAPI app; `load_served(source)` loads one model for it.
"""

from llmzoo.serve.app import create_app
from llmzoo.serve.models import ServedModel, load_served, served_name

__all__ = ["create_app", "load_served", "served_name", "ServedModel"]
