"""Closed models: only what their makers published (no weights; parameter counts often unpublished).

These have cards but no configs: their architectures are not public.
"""

from __future__ import annotations

from llmzoo.models.zoo.card import ModelCard


def _closed(name: str, organisation: str, year: int, params: float | None = None, **kw) -> ModelCard:
    kw.setdefault("family", name.split("-")[0])
    kw.setdefault("kind", "decoder")
    return ModelCard(name=name, organisation=organisation, year=year, params_published=params,
                     open_weights=False, **kw)


CARDS = (
    _closed("gpt-3.5", "OpenAI", 2022, family="gpt", source="minaee2024", aliases=("text-davinci-003",),
            architecture="GPT-3 successor trained with instruction tuning and RLHF; powers ChatGPT (with GPT-4 later).",
            notes="Minaee et al. 2024: Alpaca's demonstrations were generated with text-davinci-003."),
    _closed("chatgpt", "OpenAI", 2022, family="gpt", source="minaee2024", base_model="gpt-3.5",
            architecture="Chat model launched on 30 November 2022: a sibling of InstructGPT that follows prompt "
                         "instructions in dialogue; GPT-3.5 at launch, later GPT-4."),
    _closed("gpt-4", "OpenAI", 2023, family="gpt", source="minaee2024, zoo-lecture", context_length=8192,
            architecture="Multimodal (image + text in, text out) decoder pre-trained on next-token prediction then "
                         "RLHF plus rule-based reward models; top 10% on a simulated bar exam.",
            notes="The table of Minaee et al. 2024 gives 1.76T parameters and 13T tokens, which are unofficial estimates; OpenAI "
                  "published neither (the LLM Zoo lecture notes: '?'). Context 8192 per the LLM Zoo lecture notes."),
    _closed("claude-3", "Anthropic", 2024, family="claude", source="zoo-lecture", aliases=("claude",),
            architecture="Closed chat models (Claude 3: Haiku, Sonnet, Opus); architecture and size unpublished.",
            notes="The LLM Zoo lecture notes list Claude (version 3) among closed model families."),
    _closed("gemini-ultra", "Google", 2023, family="gemini", source="minaee2024, zoo-lecture", context_length=32768,
            aliases=("gemini",),
            architecture="Multimodal (image, audio, video, text) Transformer decoder with efficient attention for "
                         "a 32k context; Ultra is the largest, for highly complex tasks."),
    _closed("gemini-pro", "Google", 2023, family="gemini", source="minaee2024", context_length=32768,
            architecture="Gemini for scalable deployment."),
    _closed("gemini-nano-1", "Google", 2023, 1.8e9, family="gemini", source="minaee2024", context_length=32768,
            architecture="On-device Gemini distilled from larger models, 4-bit deployed.",
            notes="The table of Minaee et al. 2024: Gemini 1.8B and 3.25B, the two Nano sizes."),
    _closed("gemini-nano-2", "Google", 2023, 3.25e9, family="gemini", source="minaee2024", context_length=32768,
            architecture="The larger on-device Gemini."),
    _closed("grok-0", "xAI", 2023, 33e9, family="grok", source="minaee2024", aliases=("grok",),
            architecture="xAI's first prototype LLM, the precursor of Grok-1."),
    _closed("ernie-4.0", "Baidu", 2023, family="ernie", source="minaee2024",
            architecture="Baidu's closed successor of ERNIE 3.0.",
            notes="The row 'ERNIE 4.0: 10B, 4TB' in the table of Minaee et al. 2024 repeats ERNIE 3.0's figures (its own text: "
                  "ERNIE 3.0, 10B, 4TB corpus); Baidu has not published ERNIE 4.0's size."),
    _closed("alphacode-41b", "DeepMind", 2022, 41e9, family="alphacode", kind="encoder-decoder", source="zoo-lecture",
            aliases=("alphacode",),
            architecture="Encoder-decoder with multi-query attention for competitive programming; samples "
                         "millions of programs then filters and clusters them.",
            notes="The LLM Zoo lecture notes list AlphaCode among closed code models; size from Li et al. 2022."),
    _closed("bard", "Google", 2023, family="palm", source="minaee2024", base_model="lamda-137b",
            architecture="Google's chat assistant, first on LaMDA then PaLM 2; a baseline in Vicuna's GPT-4-judged "
                         "comparison (Minaee et al. 2024)."),
)
