"""Model cards cite the surveys and papers themselves, never this project's seed file names."""

from __future__ import annotations

import re

import pytest

from llmzoo.cli import main
from llmzoo.models.zoo import catalog_names, get_card
from llmzoo.models.zoo.card import SOURCES

# "000_2c085e0c632abd3a.txt", "Seed 000", "seeds 000/001", or a bare seed number as a source.
SEED_REFERENCE = re.compile(r"\d{3}_[0-9a-f]{16}|\bseeds?\b|(?<![\w,.-])00\d(?![\d,])", re.IGNORECASE)


def test_no_card_names_a_seed_file(capsys):
    for name in catalog_names():
        assert main(["show", name]) == 0
        assert main(["show", name, "--json"]) == 0
        out = capsys.readouterr().out
        found = SEED_REFERENCE.search(out)
        assert found is None, f"`llmzoo show {name}` cites {found.group(0)!r}"


@pytest.mark.parametrize("name, cited", [
    ("mixtral-8x7b", "Large Language Models: A Survey\", 2024, arXiv 2402.06196"),
    ("gpt-3-175b", "A Comprehensive Overview of Large Language Models\", 2023, arXiv 2307.06435"),
])
def test_cards_cite_title_year_and_arxiv_id(capsys, name, cited):
    assert main(["show", name]) == 0
    assert cited in " ".join(capsys.readouterr().out.split())  # `show` wraps long lines


def test_every_source_is_cited_with_what_it_is():
    for key, citation in SOURCES.items():
        assert "arXiv" in citation or "not a published paper" in citation or key == "assets", key
    for name in catalog_names():
        assert get_card(name).to_dict()["source"].strip()
