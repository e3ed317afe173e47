"""`Tokenizer`: one class over a `tokenizers.Tokenizer`, whatever format it was built from.

The heavy lifting (normalization, pre-tokenization, BPE/Unigram/WordPiece, decoding) is the
`tokenizers` library's; this class adds what a model needs around it: the named special
tokens, whether BOS/EOS are added, the chat template, the ids that end generation, streaming
decode, and saving in the layout `transformers` reads (tokenizer.json + tokenizer_config.json).
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import tokenizers
from tokenizers import processors

from llmzoo.errors import LlmzooError

# The named special-token roles transformers knows, in its order.
SPECIAL_ROLES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")

# Special tokens that end an assistant turn in common chat formats (llama.cpp keeps a similar list
# to decide "end of generation"). Only those present in a vocabulary count.
END_OF_TURN_TOKENS = (
    "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|endoftext|>", "<|end|>",
    "<end_of_turn>", "<turn|>", "<|return|>", "<|call|>", "<EOT>", "<|END_OF_TURN_TOKEN|>",
    "<｜end▁of▁sentence｜>", "<end_of_utterance>",
)


def bos_eos_template(bos: str | None, bos_id: int | None, eos: str | None, eos_id: int | None,
                     add_bos: bool, add_eos: bool) -> processors.TemplateProcessing:
    """The post-processor that adds BOS/EOS, written the way transformers writes it."""
    add_bos = add_bos and bos is not None and bos_id is not None
    add_eos = add_eos and eos is not None and eos_id is not None
    single = f"{bos + ':0 ' if add_bos else ''}$A:0{' ' + eos + ':0' if add_eos else ''}"
    pair = f"{single}{' ' + bos + ':1' if add_bos else ''} $B:1{' ' + eos + ':1' if add_eos else ''}"
    specials = []
    if add_bos:
        specials.append((bos, bos_id))
    if add_eos and not (add_bos and eos == bos):
        specials.append((eos, eos_id))
    return processors.TemplateProcessing(single=single, pair=pair, special_tokens=specials)


def clean_up_tokenization(text: str) -> str:
    """transformers' `clean_up_tokenization`: undo the spaces WordPiece decoding puts before punctuation."""
    for before, after in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                          (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(before, after)
    return text


class Tokenizer:
    """A tokenizer for one model: text <-> ids, special tokens, chat template, streaming decode.

    Build one with `load_tokenizer(source)`; the constructor is for the loaders.

    `special_tokens` maps roles ("bos_token", "eos_token", ...) to token strings. When
    `add_bos_token` / `add_eos_token` is given (not None) the backend's post-processor is
    replaced by one that adds exactly those, as transformers does when tokenizer_config.json
    names them; when both are None the backend's own post-processor decides (e.g. BERT's
    `[CLS] $A [SEP]`).
    """

    def __init__(
        self,
        backend: tokenizers.Tokenizer,
        *,
        special_tokens: dict[str, str | None] | None = None,
        chat_template: str | None = None,
        add_bos_token: bool | None = None,
        add_eos_token: bool | None = None,
        extra_stop_tokens: tuple[str, ...] | list[str] = (),
        clean_up_tokenization_spaces: bool = False,
        model_max_length: int | None = None,
        source: str | None = None,
    ) -> None:
        self.backend = backend
        # A tokenizer.json may carry a fixed padding/truncation; transformers ignores it unless asked.
        backend.no_padding()
        backend.no_truncation()
        self._roles = {role: tok for role, tok in (special_tokens or {}).items() if tok is not None}
        unknown = set(self._roles) - set(SPECIAL_ROLES)
        if unknown:
            raise ValueError(f"unknown special token roles {sorted(unknown)}; known: {', '.join(SPECIAL_ROLES)}")
        self.chat_template = chat_template
        self.add_bos_token = add_bos_token
        self.add_eos_token = add_eos_token
        self._extra_stop_tokens = tuple(extra_stop_tokens)
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        self.model_max_length = model_max_length
        self.source = source
        self._make_named_tokens_special()
        if add_bos_token is not None or add_eos_token is not None:
            backend.post_processor = bos_eos_template(
                self.bos_token, self.bos_token_id, self.eos_token, self.eos_token_id,
                bool(add_bos_token), bool(add_eos_token),
            )

    def _make_named_tokens_special(self) -> None:
        """Named special tokens must be whole tokens in the text and skippable when decoding."""
        special = {t.content for t in self.backend.get_added_tokens_decoder().values() if t.special}
        missing = [tok for tok in self._roles.values() if tok not in special]
        if missing:
            self.backend.add_special_tokens(
                [tokenizers.AddedToken(tok, special=True, normalized=False) for tok in dict.fromkeys(missing)]
            )

    # -- text <-> ids --------------------------------------------------------------------------

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of `text`; BOS/EOS/[CLS]... added as this model's own tokenizer adds them."""
        if not isinstance(text, str):
            raise LlmzooError(f"encode takes a str, got {type(text).__name__}")
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def encode_batch(self, texts: list[str], add_special_tokens: bool = True) -> list[list[int]]:
        """`encode` for many texts at once (the backend runs them in parallel)."""
        texts = list(texts)
        if not all(isinstance(t, str) for t in texts):
            raise LlmzooError("encode_batch takes a list of str")
        return [e.ids for e in self.backend.encode_batch(texts, add_special_tokens=add_special_tokens)]

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        """Text of `ids`; with `skip_special_tokens`, special tokens (BOS, <|im_end|>, ...) are left out."""
        text = self.backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)
        # As transformers: the clean-up was made for WordPiece and would damage BPE text.
        if self.clean_up_tokenization_spaces and type(self.backend.model).__name__ != "BPE":
            text = clean_up_tokenization(text)
        return text

    def stream_decoder(self, skip_special_tokens: bool = False) -> Any:
        """An object whose `.push(token_id)` returns the text that became printable (see streaming.py)."""
        from llmzoo.tokenizer.streaming import StreamDecoder

        return StreamDecoder(self, skip_special_tokens=skip_special_tokens)

    # -- vocabulary ----------------------------------------------------------------------------

    @cached_property
    def vocab_size(self) -> int:
        """Number of token ids (largest id + 1), added tokens included: the embedding rows a model needs."""
        ids = self.backend.get_vocab(with_added_tokens=True).values()
        return max(ids) + 1 if ids else 0

    def __len__(self) -> int:
        return self.vocab_size

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self.backend.id_to_token(int(token_id))

    def get_vocab(self) -> dict[str, int]:
        return self.backend.get_vocab(with_added_tokens=True)

    @property
    def special_tokens(self) -> dict[str, int]:
        """Every special token (named roles and added special tokens such as <|im_start|>) -> id."""
        found = {t.content: i for i, t in self.backend.get_added_tokens_decoder().items() if t.special}
        for tok in self._roles.values():
            tid = self.token_to_id(tok)
            if tid is not None:
                found.setdefault(tok, tid)
        return dict(sorted(found.items(), key=lambda kv: kv[1]))

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """Role -> token string, e.g. {"bos_token": "<s>", ...}: the variables a chat template sees."""
        return {role: self._roles[role] for role in SPECIAL_ROLES if role in self._roles}

    def _role_id(self, role: str) -> int | None:
        tok = self._roles.get(role)
        return None if tok is None else self.token_to_id(tok)

    bos_token = property(lambda self: self._roles.get("bos_token"))
    eos_token = property(lambda self: self._roles.get("eos_token"))
    unk_token = property(lambda self: self._roles.get("unk_token"))
    pad_token = property(lambda self: self._roles.get("pad_token"))
    cls_token = property(lambda self: self._roles.get("cls_token"))
    sep_token = property(lambda self: self._roles.get("sep_token"))
    mask_token = property(lambda self: self._roles.get("mask_token"))
    bos_token_id = property(lambda self: self._role_id("bos_token"))
    eos_token_id = property(lambda self: self._role_id("eos_token"))
    unk_token_id = property(lambda self: self._role_id("unk_token"))
    pad_token_id = property(lambda self: self._role_id("pad_token"))
    cls_token_id = property(lambda self: self._role_id("cls_token"))
    sep_token_id = property(lambda self: self._role_id("sep_token"))
    mask_token_id = property(lambda self: self._role_id("mask_token"))

    # -- chat ----------------------------------------------------------------------------------

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True, **kwargs: Any) -> str:
        """Render a conversation with the model's chat template, as transformers does (jinja2, sandboxed).

        Extra keyword arguments (tools, documents, enable_thinking, ...) become template variables;
        `chat_template=` overrides the tokenizer's own template.
        """
        from llmzoo.tokenizer.chat import render_chat_template

        template = kwargs.pop("chat_template", None) or self.chat_template
        if not template:
            raise LlmzooError(
                f"the tokenizer from {self.source or 'this source'} has no chat template; "
                "use a chat/instruct model or pass chat_template='...'"
            )
        return render_chat_template(template, messages, add_generation_prompt=add_generation_prompt,
                                    special_tokens=self.special_tokens_map, **kwargs)

    @property
    def stop_token_ids(self) -> set[int]:
        """Ids that end generation: EOS, the token the chat template closes a turn with, and known
        end-of-turn tokens of the vocabulary (<|im_end|>, <|eot_id|>, <end_of_turn>, ...)."""
        return set(self._stop_token_ids)

    @cached_property
    def _stop_token_ids(self) -> frozenset[int]:
        from llmzoo.tokenizer.chat import turn_end_tokens

        special = self.special_tokens
        names = [self.eos_token, *self._extra_stop_tokens]
        names += [tok for tok in END_OF_TURN_TOKENS if tok in special]
        if self.chat_template:
            names += turn_end_tokens(self.chat_template, self.special_tokens_map, list(special))
        ids = {self.token_to_id(n) for n in names if n is not None}
        return frozenset(i for i in ids if i is not None)

    # -- saving --------------------------------------------------------------------------------

    def tokenizer_config(self) -> dict[str, Any]:
        """The tokenizer_config.json transformers reads next to tokenizer.json."""
        config: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast", **self.special_tokens_map}
        # Only when we decide BOS/EOS ourselves: transformers rebuilds the post-processor from these keys
        # and would drop e.g. BERT's [CLS]/[SEP] template if they were written as false.
        if self.add_bos_token is not None or self.add_eos_token is not None:
            config["add_bos_token"] = bool(self.add_bos_token)
            config["add_eos_token"] = bool(self.add_eos_token)
        config["clean_up_tokenization_spaces"] = self.clean_up_tokenization_spaces
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        if self.chat_template:
            config["chat_template"] = self.chat_template
        if self._extra_stop_tokens:
            config["llmzoo_stop_tokens"] = list(self._extra_stop_tokens)
        return config

    def save(self, directory: str | Path) -> Path:
        """Write tokenizer.json + tokenizer_config.json + special_tokens_map.json into `directory`."""
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise LlmzooError(f"cannot save a tokenizer to {directory}: it is a file, not a directory")
        try:
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "tokenizer_config.json").write_text(
                json.dumps(self.tokenizer_config(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            (directory / "special_tokens_map.json").write_text(
                json.dumps(self.special_tokens_map, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        except OSError as e:
            raise LlmzooError(f"cannot save a tokenizer to {directory}: {e.strerror or e}; "
                              "choose a writable directory") from None
        try:
            self.backend.save(str(directory / "tokenizer.json"))
        except Exception as e:  # the Rust side raises a plain Exception when it cannot write the file
            raise LlmzooError(f"cannot save a tokenizer to {directory}: {str(e).splitlines()[0]}") from None
        return directory

    def __repr__(self) -> str:
        model = type(self.backend.model).__name__
        return f"Tokenizer({model}, vocab_size={self.vocab_size}, source={self.source!r})"
