"""`llmzoo models` and `llmzoo show` through the real CLI entry point."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from llmzoo.cli import main
from llmzoo.flops import count_params
from llmzoo.models.zoo import catalog_names, get_card


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_models_json_lists_every_card_with_counts(capsys):
    rows = _json(capsys, ["models", "--json"])
    assert [r["name"] for r in rows] == catalog_names()
    by_name = {r["name"]: r for r in rows}
    for row in rows:
        assert {"name", "family", "kind", "year", "params_published", "params"} <= set(row)
        card = get_card(row["name"])
        counted = card.composite.count_params() if card.composite is not None else None  # CLIP's two towers
        assert row["params"] == (count_params(card.config) if card.config is not None else counted)
    assert by_name["gpt-2-1.5b"]["params"] == 1_557_611_200  # the released checkpoint's count
    assert by_name["gpt-4"]["params"] is None and by_name["gpt-4"]["params_published"] is None
    assert by_name["mixtral-8x7b"]["params_active"] < by_name["mixtral-8x7b"]["params"] / 3


def test_models_filters(capsys):
    kinds = {r["kind"] for r in _json(capsys, ["models", "--json", "--kind", "encoder"])}
    assert kinds == {"encoder"}
    rows = _json(capsys, ["models", "--json", "--family", "llama"])
    assert rows and {r["family"] for r in rows} == {"llama"}
    assert "llama-2-70b" in {r["name"] for r in rows}


def test_models_unknown_family_is_a_one_line_error(capsys):
    assert main(["models", "--family", "lama"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown family 'lama'; did you mean: llama") and err.count("\n") == 1


def test_models_table(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["NAME", "KIND", "FAMILY"]
    assert any(line.startswith("gpt-3-175b ") and "175B" in line for line in out)


def test_show_a_model_with_config(capsys):
    assert main(["show", "llama-2-7b"]) == 0
    out = capsys.readouterr().out
    assert "6.74B counted from the config" in out
    assert "HF conversion: yes (family 'llama')" in out
    # KV cache per token, bf16: 2 (k, v) x 32 layers x 32 heads x 128 dims x 2 bytes = 524,288 bytes
    assert "524 KB per token" in out
    for section in ("architecture (full-size ModelConfig)", "compute per token", "memory to run", "memory to train"):
        assert section in out


def test_show_json_matches_the_analytic_numbers(capsys):
    data = _json(capsys, ["show", "palm-540b", "--json", "--seq-len", "2048"])
    assert data["params"] == count_params(get_card("palm-540b").config)
    assert data["flops_per_token"]["training"] == 3 * data["flops_per_token"]["forward"]
    assert data["training_memory"]["weights"] == 2 * data["params"]


def test_show_a_closed_model(capsys):
    assert main(["show", "GPT-4"]) == 0
    out = capsys.readouterr().out
    assert "card only (closed)" in out and "compute per token" not in out


def test_show_unknown_model(capsys):
    assert main(["show", "mistrall-7b"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model 'mistrall-7b'; did you mean: mistral-7b")


def test_models_json_does_not_import_torch():
    # The listing counts parameters analytically so it stays fast (no torch, no transformers).
    code = ("import sys; from llmzoo.cli import main; rc = main(['models', '--json']); "
            "print('torch' in sys.modules, 'transformers' in sys.modules, rc, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr.strip().splitlines()[-1] == "False False 0"
    assert len(json.loads(out.stdout)) == len(catalog_names())


@pytest.mark.parametrize("name", ["mixtral-8x7b", "llama-2-70b", "gpt-4", "t5-base", "falcon-180b"])
def test_show_separates_every_label_from_its_value(capsys, name):
    # "active per token" and "attention heads" are longer than the old label column and ran into their
    # values ("active per token12.9B"); every label line must leave two spaces before its value.
    assert main(["show", name]) == 0
    labelled = [line for line in capsys.readouterr().out.splitlines()
                if line.startswith("  ") and not line.startswith(("   ", "  ("))]
    assert labelled
    for line in labelled:
        assert re.match(r"^  \S(?:\S| (?! ))*  +\S", line), f"label runs into its value: {line!r}"
    starts = {len(line) - len(line[2:].split("  ", 1)[1].lstrip()) for line in labelled}
    assert len(starts) == 1, f"values start in several columns: {sorted(starts)}"


@pytest.mark.parametrize("name", ["gpt-3-125m", "gpt-2-117m", "glm-130b", "llama-2-7b"])
def test_show_says_hf_conversion_exactly_when_the_converter_takes_the_model(name, capsys):
    """`llmzoo show`'s "HF conversion" is the converter's own verdict on the config: GPT-3's alternating
    sparse attention and GLM's 2D positions have no transformers layout, so show says "not yet"."""
    from llmzoo.convert.save import hf_export
    from llmzoo.errors import LlmzooError
    from llmzoo.models.build import build_model

    assert main(["show", name]) == 0
    says_yes = "HF conversion: yes" in capsys.readouterr().out
    try:
        hf_export(build_model(get_card(name).config, device="meta"))
        exports = True
    except LlmzooError:
        exports = False
    assert says_yes == exports
