"""The public API as a user reaches it: `import llmzoo`, then its names."""

from __future__ import annotations


def test_subpackages_are_reachable_after_a_bare_import():
    """`import llmzoo` then `llmzoo.peft.apply(...)` / `llmzoo.models.zoo.get_config(...)`, in a fresh
    interpreter (this session's imports would hide a missing lazy attribute)."""
    import subprocess
    import sys

    code = ("import llmzoo; assert callable(llmzoo.peft.apply); assert callable(llmzoo.eval.evaluate)\n"
            "import llmzoo.models.zoo; assert llmzoo.models.zoo.get_config('gpt-2-117m').n_layers == 12")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
