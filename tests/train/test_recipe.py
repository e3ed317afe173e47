"""Recipes: YAML + key=value overrides; every mistake is one line naming the key."""

from __future__ import annotations

import pytest

from llmzoo.errors import ConfigError, LlmzooError
from llmzoo.train.recipe import builtin_recipes, load_recipe, recipe_from_dict


def test_unknown_key_names_it_and_suggests_the_closest():
    with pytest.raises(ConfigError, match=r"unknown recipe key 'warmup_step'; did you mean 'warmup_steps'\?"):
        recipe_from_dict({"model": "gpt-2", "warmup_step": 10})


def test_overrides_are_typed_like_the_field(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model: {d_model: 64, n_layers: 2}\nlr: 1e-3\nmax_steps: 10\n")
    recipe = load_recipe(path, ["lr=3e-4", "max_steps=20", "compile=true", "model.n_layers=4", "model.n_heads=2",
                                "threads=2"])
    assert recipe.lr == 3e-4 and isinstance(recipe.lr, float)  # YAML alone reads "3e-4" as a string
    assert recipe.max_steps == 20 and recipe.compile is True
    assert recipe.model == {"d_model": 64, "n_layers": 4, "n_heads": 2}
    assert recipe.threads == 2
    assert recipe.name == "r"  # named after the file


@pytest.mark.parametrize("overrides, message", [
    (["lerning_rate=1"], "unknown recipe key 'lerning_rate'"),
    (["max_steps"], "is not key=value"),
    (["max_steps=ten"], "max_steps' must be a int"),
    (["max_steps=2.5"], "max_steps' must be a int"),
    (["seq_len=0"], "seq_len must be >= 1"),
    (["parallel=zero3"], "parallel 'zero3' is not one of"),
    (["lr.x=1"], "only model.*, objective_options.*, prepare.*, data.*, peft.* take dotted keys"),
    (["min_lr=1"], "need 0 <= min_lr <= lr"),
])
def test_bad_settings_are_one_line_errors(tmp_path, overrides, message):
    path = tmp_path / "r.yaml"
    path.write_text("model: gpt-2\n")
    with pytest.raises(ConfigError, match=message) as info:
        load_recipe(path, overrides)
    assert "\n" not in str(info.value)


def test_missing_recipe_suggests_builtin():
    with pytest.raises(ConfigError, match="did you mean 'shakespeare'"):
        load_recipe("shakespear")


def test_builtin_shakespeare_recipe_loads():
    assert "shakespeare" in builtin_recipes()
    recipe = load_recipe("shakespeare", ["max_steps=3"])
    assert recipe.prepare["asset"] == "shakespeare" and recipe.max_steps == 3
    assert recipe.model["n_layers"] >= 2 and recipe.sample_tokens > 0


def test_model_override_on_a_zoo_name_starts_from_it():
    recipe = load_recipe({"model": "llama-7b"}, ["model.n_layers=2"])
    assert recipe.model == {"from": "llama-7b", "n_layers": 2}


def test_model_fields_are_typed_like_model_config():
    # YAML 1.1 reads 1e-5 as a string and the shell gives every override as text
    recipe = load_recipe({"model": {"d_model": 64, "n_heads": 4}}, ["model.norm_eps=1e-5", "model.tie_embeddings=no",
                                                                    "model.n_layers=2.0", "model.n_kv_heads=null"])
    assert recipe.model == {"d_model": 64, "n_heads": 4, "norm_eps": 1e-5, "tie_embeddings": False, "n_layers": 2,
                            "n_kv_heads": None}
    assert isinstance(recipe.model["norm_eps"], float)


@pytest.mark.parametrize("overrides, message", [
    (["model.d_model=big"], "model.d_model must be an integer, got 'big'"),
    (["model.rope_base=fast"], "model.rope_base must be a number, got 'fast'"),
    (["model.activation=1"], "model.activation must be a string, got 1"),
    (["model.from=lama-7b"], "unknown model 'lama-7b'; did you mean: llama-7b"),
    (["seed=-1"], "seed must be in [0, 2**32 - 1], got -1"),
])
def test_bad_model_fields_and_seed(overrides, message):
    with pytest.raises(LlmzooError) as info:
        load_recipe({"model": {"d_model": 64, "n_heads": 4}}, overrides)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("objective, refused", [("electra", True), ("t5_span", True), ("clm", False),
                                                ("causal_lm", False)])
def test_pipeline_layout_refuses_an_objective_when_the_recipe_is_read(objective, refused):
    """parallel=pp runs next-token prediction only: that is known from the recipe, so the refusal
    comes before any process prepares data or builds a model."""
    overrides = ["parallel=pp", f"objective={objective}"]
    if refused:
        with pytest.raises(ConfigError, match=f"parallel=pp trains the clm objective only, not '{objective}'"):
            load_recipe({"model": {"d_model": 64, "n_heads": 4}}, overrides)
    else:
        assert load_recipe({"model": {"d_model": 64, "n_heads": 4}}, overrides).parallel == "pp"
