"""Retrieval-augmented generation (Lewis et al. 2020): documents cut into overlapping chunks,
embedded by a sentence encoder, searched exactly by cosine similarity; the top-k passages go
into the prompt, numbered, and the answer comes back with the sources it was given.

    index = build_index(["docs/"], embedder="all-minilm-l6-v2")
    index.save("my-index")
    answer = ask(load_index("my-index"), model, tokenizer, "What is ...?", k=4)
"""

from llmzoo.rag.answer import Answer, ask, rag_messages
from llmzoo.rag.chunking import Chunk, chunk_text
from llmzoo.rag.index import RagIndex, build_index, load_index
from llmzoo.rag.recall import recall_at_k

__all__ = ["Answer", "Chunk", "RagIndex", "ask", "build_index", "chunk_text", "load_index", "rag_messages",
           "recall_at_k"]
