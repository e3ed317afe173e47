"""A finished `llmzoo pretrain` run leaves RUN_DIR/model that `llmzoo.load` loads, with the trained
model's outputs: in the transformers layout where one exists (then transformers gives the same
logits), in llmzoo's own format otherwise (with a note saying so). The docs/objectives.md commands
that used to leave an empty model directory, shortened to 2 steps; and the exported special-token
ids are the run's tokenizer's, not the zoo model's."""

import json
import re
from pathlib import Path

import pytest
import torch

import llmzoo
from llmzoo.cli import main
from tests.train.helpers import prepare_hamlet_run

COMMON = ["max_steps=2", "eval_every=0", "checkpoint_every=2", "progress=false", "threads=1", "batch_size=4",
          "sample_tokens=0"]

# the docs/objectives.md commands whose runs used to leave an empty model directory
DOC_OBJECTIVES = ("roberta_mlm", "spanbert", "electra", "xlm_mlm", "ul2", "glm")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "objectives.md"


def _doc_command(objective: str) -> list[str]:
    """The key=value overrides of the objective's `llmzoo pretrain` command in docs/objectives.md
    (without run_dir: each test runs in its own folder)."""
    for line in DOCS.read_text().splitlines():
        if line.startswith(f"| `{objective}` |"):
            command = re.search(r"`llmzoo pretrain --recipe objectives ([^`]*)`", line).group(1).split()
            return [arg for arg in command if not arg.startswith("run_dir=")]
    raise AssertionError(f"docs/objectives.md has no row for {objective}")


HF_CLASSES = {"roberta_mlm": "RobertaForMaskedLM", "ul2": "T5ForConditionalGeneration"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """One tokenizer + token dataset (one play) shared by every run of this module."""
    return prepare_hamlet_run(tmp_path_factory, *COMMON)


def _pretrain(prepared, run_dir, *args) -> int:
    return main(["pretrain", "--recipe", "objectives", f"data={prepared}/data", f"tokenizer={prepared}/tokenizer",
                 *args, f"run_dir={run_dir}", *COMMON])


def _trained_model(run_dir):
    """The model the run trained, as the trainer builds it, with the weights of its last checkpoint."""
    from llmzoo.train import checkpoint as ckpt_io
    from llmzoo.train.loop import Trainer
    from llmzoo.train.recipe import load_recipe

    checkpoint = ckpt_io.find_checkpoint(run_dir)
    trainer = Trainer(load_recipe(ckpt_io.read_recipe(checkpoint)), resume=run_dir)
    model = trainer.task.build_model(trainer.config)
    model.load_state_dict(ckpt_io.load_checkpoint(checkpoint).model, strict=True)
    return model.eval()


def _inputs(objective: str, vocab: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, vocab, (2, 12), generator=g)
    if objective == "ul2":
        return {"input_ids": ids, "decoder_input_ids": ids[:, :7]}
    if objective == "glm":
        return {"input_ids": ids, "position_ids": torch.arange(12).expand(2, 12),
                "block_position_ids": torch.zeros_like(ids), "part_a_lengths": torch.tensor([12, 6])}
    if objective == "xlm_mlm":
        return {"input_ids": ids, "langs": torch.randint(0, 2, ids.shape, generator=g)}
    return {"input_ids": ids}


def _outputs(model, objective: str, inputs) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = dict(model(**inputs))
        if objective == "electra":  # the generator half of the pair too
            out["generator_logits"] = model.generate(inputs["input_ids"])["logits"]
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor) and v.is_floating_point()}


@pytest.mark.parametrize("objective", DOC_OBJECTIVES)
def test_doc_command_leaves_a_loadable_model(prepared, tmp_path, capsys, objective):
    run_dir = tmp_path / objective
    assert _pretrain(prepared, run_dir, *_doc_command(objective)) == 0
    err = capsys.readouterr().err
    loaded = llmzoo.load(run_dir / "model")
    trained = _trained_model(run_dir)
    assert type(loaded) is type(trained)
    inputs = _inputs(objective, loaded.config.vocab_size)
    want, got = _outputs(trained, objective, inputs), _outputs(loaded, objective, inputs)
    assert want.keys() == got.keys() and want
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0, msg=key)
    hf = json.loads((run_dir / "model" / "config.json").read_text())
    if objective in HF_CLASSES:
        import transformers

        assert hf["architectures"] == [HF_CLASSES[objective]]
        reference = getattr(transformers, HF_CLASSES[objective]).from_pretrained(run_dir / "model").eval()
        with torch.no_grad():
            theirs = reference(**inputs).logits
        torch.testing.assert_close(got["logits"], theirs, rtol=1e-4, atol=1e-4)
    else:  # llmzoo's own format, and the run said so
        assert hf["model_type"] == "llmzoo"
        assert "note: no transformers layout" in err and "llmzoo's own format" in err


def test_exported_token_ids_are_the_run_tokenizers(prepared, tmp_path):
    """The recipe's model is `from: gpt-2-117m` (eos 50256) with the run's 1000-token WordPiece vocabulary."""
    from llmzoo.tokenizer import load_tokenizer

    assert _pretrain(prepared, tmp_path / "clm") == 0
    tok = load_tokenizer(prepared / "tokenizer")
    hf = json.loads((tmp_path / "clm" / "model" / "config.json").read_text())
    assert hf["vocab_size"] == tok.vocab_size
    assert hf["bos_token_id"] == tok.token_to_id("<s>") and hf["eos_token_id"] == tok.token_to_id("</s>")
    import transformers

    config = transformers.AutoConfig.from_pretrained(tmp_path / "clm" / "model")
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(config, name)
        assert value is None or 0 <= value < config.vocab_size, name


def test_t5_export_ends_sequences_with_the_tokenizers_eos(prepared, tmp_path):
    from llmzoo.tokenizer import load_tokenizer

    assert _pretrain(prepared, tmp_path / "t5", "objective=t5_span", "model.from=t5-base") == 0
    tok = load_tokenizer(prepared / "tokenizer")
    hf = json.loads((tmp_path / "t5" / "model" / "config.json").read_text())
    assert hf["eos_token_id"] == tok.token_to_id("</s>")  # the zoo's eos=1 is [UNK] in this vocabulary
    assert hf["pad_token_id"] == hf["decoder_start_token_id"] == tok.token_to_id("[PAD]")
    # and transformers reads the export as llmzoo does (T5 v1.0: tied logits scaled by d_model**-0.5)
    import transformers

    ours = llmzoo.load(tmp_path / "t5" / "model")
    theirs = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "t5" / "model").eval()
    inputs = _inputs("ul2", ours.config.vocab_size)  # any encoder-decoder batch
    with torch.no_grad():
        torch.testing.assert_close(ours(**inputs).logits, theirs(**inputs).logits, rtol=1e-4, atol=1e-4)
