"""RETRO's frozen retriever and neighbour database (Borgeaud et al. 2022, section 2.3); the model is
llmzoo.models.retro, its chunked cross-attention llmzoo.nn.chunked_cross_attention."""

from llmzoo.retro.database import NeighbourDB, build_db, load_db
from llmzoo.retro.retriever import retrieve, retrieve_db_rows

__all__ = ["NeighbourDB", "build_db", "load_db", "retrieve", "retrieve_db_rows"]
