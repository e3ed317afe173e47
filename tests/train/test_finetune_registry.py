"""The fine-tuning plug-in contract (llmzoo/finetune/registry.py) and the recipe keys it adds."""

from __future__ import annotations

import pytest

from llmzoo.errors import LlmzooError
from llmzoo.finetune import FinetuneData, get_task, register_task
from llmzoo.train.recipe import load_recipe


def _builder(recipe, tokenizer, model):  # never called here
    raise AssertionError


def test_registered_task_is_found_case_and_dash_insensitively():
    register_task("Registry-Probe", _builder)
    assert get_task("registry_probe") is _builder


def test_unknown_task_suggests_the_close_name():
    register_task("registry-probe", _builder)
    with pytest.raises(LlmzooError, match="did you mean: registry-probe"):
        get_task("registry-prob")


def test_task_from_a_module_path_is_imported(tmp_path, monkeypatch):
    (tmp_path / "my_tasks_mod.py").write_text(
        "from llmzoo.finetune import register_task\nregister_task('from-module', lambda r, t, m: None)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert callable(get_task("my_tasks_mod:from-module"))


def test_finetune_recipe_keys_are_typed_and_dotted_overrides_reach_them():
    register_task("registry-probe", _builder)
    recipe = load_recipe({"model": "some/base_dir", "task": "registry-probe"},
                         ["data.train=a.jsonl", "peft.method=lora", "peft.r=4", "model.rope_base=20000"])
    assert recipe.model == {"from": "some/base_dir", "rope_base": 20000.0}
    assert recipe.data == {"train": "a.jsonl"} and recipe.peft == {"method": "lora", "r": 4}
    assert recipe.device == "cpu"


@pytest.mark.parametrize("settings, message", [
    ({"task": "registry-probe", "data": "tokens_dir"}, "mapping the task reads"),
    ({"peft": {"method": "lora"}}, "set task="),
    ({"task": "registry-probe", "peft": {"r": 4}}, "with a `method`"),
    ({"device": "tpu"}, "device 'tpu' is not one of"),
])
def test_bad_finetune_settings_are_one_line_errors(settings, message):
    register_task("registry-probe", _builder)
    with pytest.raises(LlmzooError, match=message):
        load_recipe({"model": "gpt2", **settings})


def test_finetune_data_check_names_what_is_missing():
    class NoLoss:
        def model_inputs(self, batch):
            return batch

    with pytest.raises(LlmzooError, match="no loss"):
        FinetuneData(task=NoLoss(), train=[]).check("probe")
