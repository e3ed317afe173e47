"""`llmzoo pretrain --objective NAME` runs the objectives that need their own model pieces
(ELECTRA's generator + discriminator, SpanBERT's boundary head, ALBERT's SOP head, XLM's language
embeddings, GLM's 2D positions), and refuses an architecture an objective does not fit."""

import pytest

from llmzoo.cli import main
from tests.train.helpers import prepare_hamlet_run

COMMON = ["max_steps=2", "eval_every=0", "checkpoint_every=0", "progress=false", "threads=1", "batch_size=4"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """One tokenizer + token dataset (one play) shared by every run of this module."""
    return prepare_hamlet_run(tmp_path_factory, *COMMON)


@pytest.mark.parametrize("objective, model", [
    ("electra", ["model.from=electra-base"]),
    ("spanbert", ["model.from=spanbert-base"]),
    ("albert", ["model.from=albert-base", "model.embed_dim=32"]),
    ("xlm_mlm", ["model.from=xlm-100", "model.head=mlm", "model.type_vocab_size=0"]),
    ("glm", ["model.position_2d=true", "model.position=learned"]),
    ("t5_span", ["model.from=t5-base"]),
    ("wwm_mlm", ["model.from=bert-base", "model.head=mlm", "model.pooler=null"]),
    ("xlm_clm", []),
])
def test_objective_trains_through_pretrain(prepared, tmp_path, capsys, objective, model):
    code = main(["pretrain", "--recipe", "objectives", f"data={prepared}/data", f"tokenizer={prepared}/tokenizer",
                 f"objective={objective}", *model, f"run_dir={tmp_path / objective}", *COMMON])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "done: 2 steps" in out.out + out.err


def test_objective_on_an_architecture_it_does_not_fit(prepared, tmp_path, capsys):
    code = main(["pretrain", "--recipe", "objectives", f"data={prepared}/data", f"tokenizer={prepared}/tokenizer",
                 "objective=mlm", f"run_dir={tmp_path / 'bad'}", *COMMON])  # the recipe's model is a GPT-2 decoder
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "trains encoder models" in err[0]
