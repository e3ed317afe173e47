"""The final `done:` line and the val metrics report a perplexity only where exp(loss) is one:
ELECTRA's loss is generator MLM + 50 x discriminator, whose exp once printed as 'perplexity 7.5e17'."""

from __future__ import annotations

from llmzoo.cli import main
from llmzoo.train.metrics import read_metrics
from tests.train.test_pretrain_objectives import COMMON, prepared  # noqa: F401  (the shared fixture)


def _run(prepared, tmp_path, capsys, objective, *model):
    run = tmp_path / objective
    code = main(["pretrain", "--recipe", "objectives", f"data={prepared}/data", f"tokenizer={prepared}/tokenizer",
                 f"objective={objective}", *model, f"run_dir={run}", *COMMON])
    out = capsys.readouterr()
    assert code == 0, out.err
    done = [line for line in out.out.splitlines() if line.startswith("done:")]
    val = [r for r in read_metrics(run) if r.get("kind") == "val"]
    assert len(done) == 1 and "val loss" in done[0] and val  # the last step validates
    return done[0], val


def test_summed_electra_loss_reports_no_perplexity(prepared, tmp_path, capsys):  # noqa: F811
    done, val = _run(prepared, tmp_path, capsys, "electra", "model.from=electra-base")
    assert "perplexity" not in done and all("perplexity" not in r for r in val)


def test_token_cross_entropy_reports_its_perplexity(prepared, tmp_path, capsys):  # noqa: F811
    done, val = _run(prepared, tmp_path, capsys, "clm")
    assert "(perplexity " in done and all("perplexity" in r for r in val)


def test_encoder_decoder_run_ends_with_a_sample(prepared, tmp_path, capsys):  # noqa: F811
    # T5 reads the prompt as its encoder input; the sample used to be skipped for encoder-decoders
    code = main(["pretrain", "--recipe", "objectives", f"data={prepared}/data", f"tokenizer={prepared}/tokenizer",
                 "objective=t5_span", "model.from=t5-base", f"run_dir={tmp_path / 't5'}", "sample_tokens=5",
                 "sample_prompt=To be, or not to be", *COMMON])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "--- sample ---\ninput: 'To be, or not to be'\noutput: " in out.out and "note: no sample" not in out.err
