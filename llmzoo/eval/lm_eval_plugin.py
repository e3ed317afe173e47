"""Makes lm-eval's own command line know `--model llmzoo`.

lm-eval 0.4.13 has no plugin discovery: its model registry is filled from a fixed table in
`lm_eval/models/__init__.py` (no entry points are read). So the adapter (llmzoo.eval.lm_eval_adapter)
is made known the only way that needs no change to lm-eval: a `.pth` file in site-packages, run by
Python's `site` module at start-up, installs an import hook that waits for `lm_eval.models` and then
registers `llmzoo` as a lazy placeholder (lm-eval's "module:Class" form), so

    lm_eval --model llmzoo --model_args source=smollm2-135m-instruct --tasks piqa --limit 20

loads the adapter only when that model is asked for. The hook itself imports nothing until lm-eval
is imported; without lm-eval installed it never fires.

    python -m llmzoo.eval.lm_eval_plugin install   # `make setup` runs this; prints the file written
    python -m llmzoo.eval.lm_eval_plugin remove
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import sysconfig
from pathlib import Path

PTH_NAME = "llmzoo-lm-eval.pth"
MODEL_NAME = "llmzoo"
ADAPTER = "llmzoo.eval.lm_eval_adapter:LlmzooLM"
WATCHED = "lm_eval.models"  # importing it fills lm-eval's registry; ours goes in right after


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the real loader of lm_eval.models so `llmzoo` is registered
    once lm-eval's own models are (registering earlier would keep lm-eval from loading its own:
    it imports them only while its registry is empty)."""

    def find_spec(self, name: str, path, target=None):
        if name != WATCHED:
            return None
        sys.meta_path.remove(self)  # look the module up the normal way, once
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def run_and_register(module) -> None:
            run_module(module)
            from lm_eval.api.registry import model_registry

            if MODEL_NAME not in model_registry:
                model_registry.register(MODEL_NAME, target=ADAPTER)

        spec.loader.exec_module = run_and_register
        return spec


def watch() -> None:
    """Called by the .pth line at interpreter start-up."""
    if WATCHED in sys.modules:  # already imported (not at start-up): register directly
        from lm_eval.api.registry import model_registry

        if MODEL_NAME not in model_registry:
            model_registry.register(MODEL_NAME, target=ADAPTER)
        return
    if not any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())


def pth_path() -> Path:
    return Path(sysconfig.get_paths()["purelib"]) / PTH_NAME


def install() -> Path:
    path = pth_path()
    # A .pth line that starts with "import" is executed by site.py; keep it one statement long.
    path.write_text("import llmzoo.eval.lm_eval_plugin as _llmzoo_lm_eval; _llmzoo_lm_eval.watch()\n")
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["install"]:
        print(f"wrote {install()}: lm_eval --model {MODEL_NAME} now finds llmzoo's adapter")
        return 0
    if args == ["remove"]:
        path = pth_path()
        path.unlink(missing_ok=True)
        print(f"removed {path}")
        return 0
    print("usage: python -m llmzoo.eval.lm_eval_plugin install|remove", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
