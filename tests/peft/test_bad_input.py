"""User mistakes with adapters: one line (LlmzooError) that names the problem; exit 2 in the CLI."""

from __future__ import annotations

import json

import peft
import pytest
import transformers

import llmzoo
import llmzoo.peft
from llmzoo.cli import main
from llmzoo.errors import LlmzooError
from tests.peft.peers import LLAMA, PEERS, base_checkpoint, peft_adapter


@pytest.fixture
def llama(tmp_path):
    """A base checkpoint and a peft LoRA adapter for it."""
    peer = PEERS["llama"]
    hf_model, _ = base_checkpoint(peer, tmp_path / "base")
    peft_adapter(peer, hf_model, "lora", tmp_path / "adapter")
    return tmp_path / "base", tmp_path / "adapter"


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_adapter_for_a_base_with_other_names(tmp_path, llama):
    base_checkpoint(PEERS["bert"], tmp_path / "bert")
    with pytest.raises(LlmzooError) as e:
        llmzoo.load(tmp_path / "bert", adapter=llama[1])
    assert "model.layers.0." in one_line(e) and "encoder.layer.0." in str(e.value)


def test_adapter_for_a_base_with_other_shapes(tmp_path, llama):
    wider = transformers.LlamaConfig(**{**LLAMA, "intermediate_size": 128})
    transformers.LlamaForCausalLM(wider).save_pretrained(tmp_path / "wider")
    with pytest.raises(LlmzooError) as e:
        llmzoo.load(tmp_path / "wider", adapter=llama[1])
    assert "mlp." in one_line(e) and "shape" in str(e.value) and "128" in str(e.value)


def test_unknown_target_lists_the_valid_names(llama):
    model = llmzoo.load(llama[0])
    with pytest.raises(LlmzooError) as e:
        llmzoo.peft.apply(model, "lora", target_modules=["q_proj", "query"])
    assert "'query'" in one_line(e) and "q_proj" in str(e.value) and "down_proj" in str(e.value)
    with pytest.raises(LlmzooError, match="valid names"):
        llmzoo.peft.apply(model, "lora", target_modules=r"attn\.nothing")


@pytest.mark.parametrize("options, words", [
    ({"r": 0}, "positive integer"), ({"r": -2}, "positive integer"), ({"lora_alpha": 0}, "lora_alpha"),
    ({"lora_dropout": 1.0}, "lora_dropout"), ({"rank": 4}, "unknown LoRA option"),
])
def test_bad_options(llama, options, words):
    model = llmzoo.load(llama[0])
    with pytest.raises(LlmzooError, match=words):
        llmzoo.peft.apply(model, "lora", **options)
    with pytest.raises(LlmzooError, match="unknown PEFT method"):
        llmzoo.peft.apply(model, "qlora-ish")


def test_a_second_adapter_is_refused(llama):
    model = llmzoo.load(llama[0], adapter=llama[1])
    with pytest.raises(LlmzooError, match="already has a LoRA adapter"):
        llmzoo.peft.apply(model, "lora")


def test_peft_method_llmzoo_does_not_load(tmp_path, llama, capsys):
    hf_model = transformers.LlamaForCausalLM.from_pretrained(llama[0])
    loha = peft.get_peft_model(hf_model, peft.LoHaConfig(target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    loha.save_pretrained(tmp_path / "loha")
    with pytest.raises(LlmzooError) as e:
        llmzoo.load(llama[0], adapter=tmp_path / "loha")
    assert "LOHA" in one_line(e) and "LORA" in str(e.value) and "IA3" in str(e.value)
    capsys.readouterr()
    for command in (["adapter", "info", str(tmp_path / "loha")],
                    ["adapter", "merge", str(llama[0]), str(tmp_path / "loha"), str(tmp_path / "out")]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "LOHA" in err and "\n" not in err


def test_unsupported_lora_option_is_named(tmp_path, llama):
    config = json.loads((llama[1] / "adapter_config.json").read_text())
    (llama[1] / "adapter_config.json").write_text(json.dumps({**config, "bias": "all"}))
    with pytest.raises(LlmzooError, match="bias='all'"):
        llmzoo.load(llama[0], adapter=llama[1])


def test_pickled_adapter_is_refused_in_the_cli(llama, capsys):
    (llama[1] / "adapter_model.safetensors").rename(llama[1] / "adapter_model.bin")
    assert main(["adapter", "merge", str(llama[0]), str(llama[1]), str(llama[1].parent / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "pickle" in err and "\n" not in err
    assert not (llama[1].parent / "out").exists()
    assert main(["adapter", "info", str(llama[1].parent)]) == 2
    assert "adapter_config.json" in capsys.readouterr().err


def test_merge_and_save_need_an_adapter(llama):
    model = llmzoo.load(llama[0])
    with pytest.raises(LlmzooError, match="no LoRA adapter"):
        llmzoo.peft.merge(model)
    with pytest.raises(LlmzooError, match="no LoRA adapter"):
        llmzoo.peft.save_adapter(model, llama[1].parent / "x")


def test_saving_an_unmerged_model_says_what_to_do(llama):
    model = llmzoo.load(llama[0], adapter=llama[1])
    with pytest.raises(LlmzooError, match="merge"):
        llmzoo.save(model, llama[1].parent / "out")


def test_lm_head_adapter_is_refused(tmp_path, llama):
    hf_model = transformers.LlamaForCausalLM.from_pretrained(llama[0])
    peft.get_peft_model(hf_model, peft.LoraConfig(target_modules=["lm_head"])).save_pretrained(tmp_path / "head")
    with pytest.raises(LlmzooError, match="lm_head"):
        llmzoo.load(llama[0], adapter=tmp_path / "head")


def test_bad_regex_and_lm_head_targets(llama):
    model = llmzoo.load(llama[0])
    with pytest.raises(LlmzooError, match="not a valid regular expression"):
        llmzoo.peft.apply(model, "lora", target_modules="layers.(")
    with pytest.raises(LlmzooError, match="lm_head is not supported"):
        llmzoo.peft.apply(model, "lora", target_modules=["q_proj", "lm_head"])


def test_dora_tensors_with_a_lora_config(tmp_path):
    peer = PEERS["llama"]
    hf_model, _ = base_checkpoint(peer, tmp_path / "base")
    peft_adapter(peer, hf_model, "dora", tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps({**config, "use_dora": False}))
    with pytest.raises(LlmzooError, match="use_dora"):
        llmzoo.load(tmp_path / "base", adapter=tmp_path / "adapter")


def cli_error(capsys, command) -> str:
    capsys.readouterr()
    assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err
    return err


def test_ia3_adapter_for_a_wider_base_names_the_shape(tmp_path, llama, capsys):
    hf_model = transformers.LlamaForCausalLM.from_pretrained(llama[0])
    peft.get_peft_model(hf_model, peft.IA3Config(target_modules=["k_proj", "down_proj"], feedforward_modules=["down_proj"],
                                                 task_type="CAUSAL_LM")).save_pretrained(tmp_path / "ia3")
    wider = transformers.LlamaConfig(**{**LLAMA, "intermediate_size": 128})
    transformers.LlamaForCausalLM(wider).save_pretrained(tmp_path / "wider")
    err = cli_error(capsys, ["adapter", "merge", str(tmp_path / "wider"), str(tmp_path / "ia3"), str(tmp_path / "out")])
    assert "down_proj.ia3_l" in err and "(1, 96)" in err and "128" in err
    assert not (tmp_path / "out").exists()


def test_bottleneck_adapter_for_another_base_names_the_module(tmp_path, llama, capsys):
    base_checkpoint(PEERS["t5"], tmp_path / "t5")
    model = llmzoo.load(llama[0])
    llmzoo.peft.apply(model, "houlsby", r=4)
    llmzoo.peft.save_adapter(model, tmp_path / "houlsby")
    err = cli_error(capsys, ["adapter", "merge", str(tmp_path / "t5"), str(tmp_path / "houlsby"), str(tmp_path / "o")])
    assert "'layers.0." in err and "encoder.layers.0." in err and "another model" in err


@pytest.mark.parametrize("method, options, words", [
    ("ia3", {"target_modules": ["k_proj", "key"]}, "valid names"),
    ("ia3", {"feedforward_modules": ["up_proj"]}, "not among the targeted"),
    ("ia3", {"r": 4}, "unknown \\(IA\\)3 option"),
    ("qlora", {"r": 0}, "positive integer"),
    ("houlsby", {"r": 0}, "positive integer"), ("pfeiffer", {"r": -3}, "positive integer"),
    ("houlsby", {"non_linearity": "softmax"}, "non_linearity"), ("pfeiffer", {"target_modules": ["q_proj"]}, "unknown"),
])
def test_bad_options_of_other_methods(llama, method, options, words):
    model = llmzoo.load(llama[0])
    with pytest.raises(LlmzooError, match=words) as e:
        llmzoo.peft.apply(model, method, **options)
    one_line(e)


def test_a_second_adapter_of_another_method_is_refused(llama):
    model = llmzoo.load(llama[0], adapter=llama[1])
    with pytest.raises(LlmzooError, match="already has a LoRA adapter"):
        llmzoo.peft.apply(model, "ia3")
    model = llmzoo.peft.apply(llmzoo.load(llama[0]), "pfeiffer")
    with pytest.raises(LlmzooError, match="already has a Pfeiffer"):
        llmzoo.peft.load_adapter(model, llama[1])
