"""`python -m llmzoo.quant.native build`: what `make setup` runs, so tests and first use don't build."""

import sys

from llmzoo.quant.native import available, build_dir

if sys.argv[1:] != ["build"]:
    sys.exit("usage: python -m llmzoo.quant.native build")
print("llmzoo native kernel:", f"ready in {build_dir()}" if available() else "not available (see the warning)")
