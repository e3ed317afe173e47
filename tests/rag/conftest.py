"""A small document set with one planted fact, indexed with the real all-MiniLM-L6-v2."""

import pytest

from llmzoo.cli import main
from llmzoo.errors import AssetMissingError

DOCS = {
    "bees.txt": "Honey bees live in hives. Worker bees collect nectar from flowers and turn it into honey, "
                "and the queen lays the eggs of the colony.",
    "volcanoes.txt": "A volcano erupts when molten rock called magma rises from deep inside the earth and "
                     "pours out of the crater as lava and ash.",
    "chess.txt": "Chess is a board game for two players. Each player starts with sixteen pieces, and the goal "
                 "is to checkmate the opponent's king.",
    "bread.txt": "To bake bread, mix flour, water, yeast and salt into a dough, let it rise for an hour, "
                 "then bake it in a hot oven until the crust is brown.",
    "rainforest.txt": "Tropical rainforests are warm, wet forests near the equator. They hold more species of "
                      "plants and animals than any other land habitat.",
    "zebra.txt": "The Zebra Library opened in 1921. The secret launch code of the Zebra Library is 7341, and "
                 "only the head librarian knows it.",
}
PLANTED = "zebra.txt"
QUESTION = "What is the secret launch code of the Zebra Library?"
FACT = "7341"
# one paraphrase per document, sharing few words with it: recall@k is measured on these
LABELLED = [("How do insects make a sweet food from plants?", "bees.txt"),
            ("Why does a mountain spit out fire and melted stone?", "volcanoes.txt"),
            ("How do you win the strategy game with kings and queens on a checkered board?", "chess.txt"),
            ("What are the steps to make a loaf at home?", "bread.txt"),
            ("Which jungle habitat has the most biodiversity?", "rainforest.txt"),
            ("When was the library with the striped animal's name founded?", "zebra.txt")]


@pytest.fixture(scope="session")
def docs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("docs")
    for name, text in DOCS.items():
        (folder / name).write_text(text + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def index_dir(docs, tmp_path_factory):
    out = tmp_path_factory.mktemp("rag") / "index"
    try:
        from llmzoo.rag.embedder import load_embedder

        load_embedder("all-minilm-l6-v2")
    except AssetMissingError as e:
        pytest.skip(str(e))
    # chunks of 16 words overlapping by 4: several chunks per document, so retrieval picks among them
    assert main(["rag", "index", str(docs), "--out", str(out), "--chunk-size", "16", "--chunk-overlap", "4"]) == 0
    return out
