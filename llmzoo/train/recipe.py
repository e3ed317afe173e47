"""A training recipe (pretraining or fine-tuning): one YAML file of settings, overridable from the
command line.

    recipe = load_recipe("shakespeare", overrides=["max_steps=200", "model.n_layers=2"])

Fine-tuning: `task: NAME` names a task of llmzoo.finetune (registry.py documents the contract);
`model.from: SOURCE` is the base, anything llmzoo.load reads (a zoo name with weights, an HF or
llmzoo directory, a .gguf file), with optional ModelConfig fields changed on top (e.g.
`model.rope_scaling`); `data:` is then a mapping the task's builder reads (`data.train`, ...);
`peft: {method: lora, r: 8, ...}` applies llmzoo.peft.apply(model, method, **options) (absent:
full fine-tuning). `device: cpu|cuda` places the run (NCCL between CUDA processes, gloo on CPU).

`model` is a zoo name (`llama-7b`) or a dict of ModelConfig fields, optionally starting from a
zoo config (`from: llama-7b`); a missing `vocab_size` is taken from the dataset. `batch_size` is
the *global* number of sequences per optimizer step, so a recipe trains the same model whether it
runs in one process or many (each data-parallel rank takes batch_size / (grad_accum * dp_size)).
Unknown keys are one-line errors that suggest the closest known key. The whole recipe is checked
when it is read, before anything is prepared: `model.*` fields are converted to ModelConfig's types
(llmzoo/train/model_spec.py), the objective and its options are looked up, the seed range checked;
the trainer then runs its pre-flight (llmzoo/train/preflight.py: seq_len, data size, memory).
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from llmzoo.errors import ConfigError

DEVICES = ("cpu", "cuda")
PARALLEL_MODES = ("none", "ddp", "zero1", "zero2", "fsdp", "tp", "pp", "ep")
DECAYS = ("cosine", "linear", "constant")
PRECISIONS = ("bf16", "fp32")
PP_SCHEDULES = ("gpipe", "1f1b")
BF16_GEMMS = ("auto", "native", "fp32")


@dataclass
class Recipe:
    name: str = "custom"
    # --- what to train -----------------------------------------------------------------------
    model: Any = None  # zoo name or dict of ModelConfig fields (+ optional `from: zoo-name`; fine-tuning: any source)
    task: str | None = None  # fine-tuning task (llmzoo.finetune registry); None: pretraining on `data` tokens
    data: Any = None  # pretraining: prepared token dataset (`llmzoo data prepare`); fine-tuning: the task's mapping
    peft: dict | None = None  # fine-tuning: {method: lora, ...options} for llmzoo.peft.apply; None: full fine-tuning
    tokenizer: str | None = None  # for special tokens and the final sample; default: the dataset's
    prepare: dict | None = None  # how to build `data` (and a tokenizer) when it is missing; see prepare.py
    objective: str = "clm"
    objective_options: dict = field(default_factory=dict)
    run_dir: str | None = None  # default: runs/<name>
    seed: int = 0
    # --- batch ---------------------------------------------------------------------------------
    seq_len: int = 256
    batch_size: int = 8  # global sequences per optimizer step
    grad_accum: int = 1  # micro-steps per optimizer step
    max_steps: int = 1000
    # --- optimizer (AdamW, Loshchilov & Hutter 2019) and schedule ------------------------------
    lr: float = 3e-4
    min_lr: float = 3e-5
    warmup_steps: int = 100
    decay: str = "cosine"  # after warmup: cosine or linear to min_lr at decay_steps, or constant
    decay_steps: int | None = None  # default: max_steps
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95  # GPT-3 / LLaMA
    eps: float = 1e-8
    grad_clip: float = 1.0  # 0 disables
    # --- device, precision and speed --------------------------------------------------------------
    device: str = "cpu"  # cpu (gloo between processes) or cuda (NCCL; one GPU per process)
    precision: str = "bf16"  # bf16 autocast with fp32 master weights, or fp32
    activation_checkpointing: bool = False
    compile: bool = False
    fuse_projections: bool = True  # q/k/v and gate/up as one GEMM each at run time (llmzoo.nn.fused)
    fused_loss: bool = True  # clm: LM head + cross-entropy by chunks, no logits tensor (llmzoo.nn.linear_cross_entropy)
    bf16_gemm: str = "auto"  # auto: bf16 GEMMs through the fp32 kernel on CPUs without bf16 units (llmzoo.nn.bf16)
    threads: int | None = None  # torch intra-op threads; None: torch's default
    deterministic: bool = False  # torch.use_deterministic_algorithms (bit-exact resume tests)
    peak_flops: float | None = None  # matmul peak FLOP/s per process for MFU; None: measured at start (~1 s)
    # --- evaluation, logging, checkpoints -------------------------------------------------------
    eval_every: int = 100
    eval_batches: int = 8
    log_every: int = 1
    checkpoint_every: int = 200
    keep_last: int = 3
    progress: bool = True
    sample_prompt: str = ""
    sample_tokens: int = 0  # > 0: print a sample at the end
    sample_temperature: float = 0.8
    # --- loss spikes (PaLM, Chowdhery et al. 2022, section 5.1; OPT logbook) ----------------------
    spike_factor: float = 0.0  # > 0: a loss above factor x the running median is a spike
    spike_window: int = 50  # losses in the running median
    spike_min_history: int = 10  # no spike decisions before this many losses
    spike_skip_after: int = 0  # batches skipped after the spike batch (besides those since the checkpoint)
    spike_lr_factor: float = 1.0  # multiply the learning rate after each rewind (< 1 lowers it, as OPT did)
    max_rewinds: int = 5
    # --- scale-out (torch.distributed) ----------------------------------------------------------
    parallel: str = "none"
    pp_microbatches: int = 4
    pp_schedule: str = "gpipe"
    # --- pre-flight overrides (llmzoo/train/preflight.py) ------------------------------------------
    allow_large_memory: bool = False  # start even when the estimated memory exceeds what the machine has free
    allow_long_sequences: bool = False  # seq_len above model.max_seq_len (RoPE/ALiBi/relative positions only)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(f"recipe {self.name!r}: {msg}")

        need(self.model is not None, "no `model` given (a zoo name or a dict of ModelConfig fields)")
        need(isinstance(self.model, (str, dict)), f"`model` must be a zoo name or a mapping, got {type(self.model).__name__}")
        for key in ("seq_len", "batch_size", "grad_accum", "max_steps", "eval_batches", "log_every", "keep_last",
                    "spike_window", "pp_microbatches"):
            need(getattr(self, key) >= 1, f"{key} must be >= 1, got {getattr(self, key)}")
        for key in ("warmup_steps", "eval_every", "checkpoint_every", "sample_tokens", "spike_min_history",
                    "spike_skip_after", "max_rewinds"):
            need(getattr(self, key) >= 0, f"{key} must be >= 0, got {getattr(self, key)}")
        need(self.lr > 0 and 0 <= self.min_lr <= self.lr, f"need 0 <= min_lr <= lr and lr > 0, got lr={self.lr} min_lr={self.min_lr}")
        need(self.decay in DECAYS, f"decay {self.decay!r} is not one of {DECAYS}")
        need(self.precision in PRECISIONS, f"precision {self.precision!r} is not one of {PRECISIONS}")
        need(self.parallel in PARALLEL_MODES, f"parallel {self.parallel!r} is not one of {PARALLEL_MODES}")
        need(self.device in DEVICES, f"device {self.device!r} is not one of {DEVICES}")
        need(self.bf16_gemm in BF16_GEMMS, f"bf16_gemm {self.bf16_gemm!r} is not one of {BF16_GEMMS}")
        need(self.pp_schedule in PP_SCHEDULES, f"pp_schedule {self.pp_schedule!r} is not one of {PP_SCHEDULES}")
        need(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "beta1 and beta2 must be in [0, 1)")
        need(self.weight_decay >= 0 and self.grad_clip >= 0, "weight_decay and grad_clip must be >= 0")
        need(self.spike_factor == 0 or self.spike_factor > 1, f"spike_factor must be 0 (off) or > 1, got {self.spike_factor}")
        need(0 < self.spike_lr_factor <= 1, f"spike_lr_factor must be in (0, 1], got {self.spike_lr_factor}")
        need(self.decay_steps is None or self.decay_steps >= 1, "decay_steps must be >= 1")
        need(isinstance(self.objective_options, dict), "objective_options must be a mapping")
        # numpy's generators take seeds in [0, 2**32); torch and Python would take more, but one
        # seed seeds all three
        need(0 <= self.seed < 2**32, f"seed must be in [0, 2**32 - 1], got {self.seed}")
        need(self.run_dir is None or str(self.run_dir).strip() != "", "run_dir is empty; give a directory or leave it out")
        need(self.prepare is None or isinstance(self.prepare, dict), "`prepare` must be a mapping (asset, files, tokenizer, ...)")
        if self.prepare is not None:
            from llmzoo.train.prepare import check_prepare_spec

            check_prepare_spec(self.prepare)
        if self.task is not None:
            self._validate_finetune(need)
            return
        need(self.peft is None, "`peft` adapts a base model for a fine-tuning task; set task=... (see docs/finetune.md)")
        need(self.data is None or isinstance(self.data, str),
             "`data` of a pretraining recipe is a prepared token dataset directory; a mapping is for task=...")
        check_objective(self.objective, self.objective_options)
        if self.parallel == "pp":
            from llmzoo.train.pipeline import check_pipeline_objective

            check_pipeline_objective(self.objective)
        from llmzoo.train.model_spec import normalise_model_spec

        self.model = normalise_model_spec(self.model)

    def _validate_finetune(self, need) -> None:
        from llmzoo.finetune.registry import get_task
        from llmzoo.train.model_spec import normalise_base_spec

        need(isinstance(self.task, str) and self.task.strip() != "", f"task must be a task name, got {self.task!r}")
        get_task(self.task)  # unknown names fail here, before any model is loaded
        need(self.data is None or isinstance(self.data, dict),
             f"`data` of a fine-tuning recipe is a mapping the task reads (data.train, data.val, ...), got {self.data!r}")
        need(self.prepare is None, "`prepare` builds pretraining token data; a fine-tuning task reads `data` itself")
        need(self.parallel != "pp", "parallel=pp pipelines next-token pretraining only; use ddp, zero1, zero2, fsdp or tp")
        if self.trains_from_scratch:  # the task's own model (registry.OwnModel): its build() reads `model:`
            need(isinstance(self.model, dict), f"task {self.task!r} builds its own model from a `model:` mapping")
            need(self.peft is None, f"task {self.task!r} trains a new model from scratch; `peft` adapts a pretrained base")
            return
        if self.peft is not None:
            need(isinstance(self.peft, dict) and isinstance(self.peft.get("method"), str),
                 "`peft` must be a mapping with a `method` (e.g. peft.method=lora peft.r=8)")
            # TP's plan shards nn.Linear projections by name; an adapter-wrapped one is another module
            need(self.parallel != "tp", "parallel=tp does not shard adapter-wrapped layers; use ddp, zero1, zero2 "
                                        "or fsdp with peft")
            need(self.parallel != "ep", "parallel=ep shards whole experts for full training; use ddp, zero1, zero2 "
                                        "or fsdp with peft")
        self.model = normalise_base_spec(self.model)

    @property
    def is_finetune(self) -> bool:
        return self.task is not None

    @property
    def trains_from_scratch(self) -> bool:
        """A task with a model of its own (RETRO): built from `model:`, not loaded from `model.from`."""
        from llmzoo.finetune.registry import own_model

        return self.task is not None and own_model(self.task) is not None

    @property
    def total_decay_steps(self) -> int:
        return self.decay_steps or self.max_steps

    def resolved_run_dir(self) -> Path:
        return Path(self.run_dir) if self.run_dir else Path("runs") / self.name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# reading and overriding


def _field_types() -> dict[str, Any]:
    return {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory() for f in fields(Recipe)}


def _unknown_key(key: str, known: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else "see llmzoo/train/recipe.py for the known keys"
    return ConfigError(f"unknown {where} key {key!r}; {hint}")


def _coerce(key: str, value: Any, default: Any) -> Any:
    """YAML reads `1e-3` as a string and `3` where a float is meant; convert by the field's type."""
    if value is None or default is None:
        if key in ("threads", "decay_steps") and isinstance(value, str):
            return _coerce(key, value, 0)
        if key == "peak_flops" and isinstance(value, (str, int)):
            return _coerce(key, value, 0.0)
        return value
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("true", "yes", "on", "1"):
                    return True
                if value.lower() in ("false", "no", "off", "0"):
                    return False
                raise ValueError
            return bool(value)
        if isinstance(default, int) and not isinstance(value, bool):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, list) and not isinstance(value, list):
            return [value]
    except (TypeError, ValueError):
        raise ConfigError(f"recipe key {key!r} must be a {type(default).__name__}, got {value!r}") from None
    return value


def recipe_from_dict(data: dict[str, Any], name: str | None = None) -> Recipe:
    if not isinstance(data, dict):
        raise ConfigError(f"a recipe is a mapping of settings, got {type(data).__name__}")
    defaults = _field_types()
    for key in data:
        if key not in defaults:
            raise _unknown_key(key, list(defaults), "recipe")
    values = {k: _coerce(k, v, defaults[k]) for k, v in data.items()}
    if name and "name" not in values:
        values["name"] = name
    return Recipe(**values)


def check_objective(name: Any, options: dict) -> None:
    """An unknown objective name or option is a one-line ConfigError before any data is prepared
    (make_task, which builds the objective, runs only after the tokenizer and model exist)."""
    from llmzoo.objectives import ALIASES, OBJECTIVES

    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"objective must be a name such as 'clm' or 't5_span', got {name!r}")
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    cls = OBJECTIVES.get(key)
    if cls is None:
        close = difflib.get_close_matches(key, list(OBJECTIVES) + list(ALIASES), n=3, cutoff=0.5)
        hint = f"did you mean: {', '.join(close)}?" if close else f"known objectives: {', '.join(OBJECTIVES)}"
        raise ConfigError(f"unknown objective {name!r}; {hint}")
    allowed = [o for o in cls.option_names() if o not in ("special_tokens", "vocab_size")]
    for option in options:
        if option not in allowed:
            close = difflib.get_close_matches(str(option), allowed, n=2, cutoff=0.5)
            hint = f"did you mean: {', '.join(close)}?" if close else f"its options: {', '.join(allowed) or 'none'}"
            raise ConfigError(f"objective {key!r} has no option {option!r} (objective_options.{option}); {hint}")


def builtin_recipes() -> list[str]:
    folder = resources.files("llmzoo") / "recipes"
    if not folder.is_dir():
        return []
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def builtin_finetune_recipes() -> list[str]:
    """The built-in recipes that fine-tune (those with a `task:`)."""
    folder = resources.files("llmzoo") / "recipes"
    names = []
    for name in builtin_recipes():
        try:
            data = yaml.safe_load((folder / f"{name}.yaml").read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            continue
        # a task's own from-scratch model (RETRO) is a `model:` mapping without `from`: a pretraining recipe
        model = data.get("model") if isinstance(data, dict) else None
        if isinstance(data, dict) and data.get("task") and not (isinstance(model, dict) and "from" not in model):
            names.append(name)
    return names


def _read_recipe_file(source: str | Path) -> tuple[dict[str, Any], str]:
    path = Path(source)
    if not path.is_file():
        packaged = resources.files("llmzoo") / "recipes" / f"{source}.yaml"
        if not packaged.is_file():
            known = builtin_recipes()
            close = difflib.get_close_matches(str(source), known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"built-in recipes: {', '.join(known) or 'none'}"
            raise ConfigError(f"recipe {str(source)!r} is neither a file nor a built-in recipe; {hint}")
        text, name = packaged.read_text(encoding="utf-8"), str(source)
    else:
        text, name = path.read_text(encoding="utf-8"), path.stem
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"recipe {str(source)!r} is not valid YAML{line}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {str(source)!r} must be a mapping of settings")
    return data, name


# settings that are mappings, reachable with dotted overrides (model.n_layers=4, data.train=FILE, peft.r=8)
DOTTED_KEYS = ("model", "objective_options", "prepare", "data", "peft")


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`key=value` and `model.d_model=64` (dotted keys reach into dict settings)."""
    data = dict(data)
    defaults = _field_types()
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value (e.g. max_steps=100 or model.n_layers=4)")
        key, _, raw = item.partition("=")
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        head, _, rest = key.partition(".")
        if head not in defaults:
            raise _unknown_key(head, list(defaults), "recipe")
        if not rest:
            data[head] = value
            continue
        if head not in DOTTED_KEYS:
            raise ConfigError(f"override {key!r}: only {', '.join(k + '.*' for k in DOTTED_KEYS)} take dotted keys")
        current = data.get(head)
        if isinstance(current, str) and head == "model":
            current = {"from": current}
        elif current is not None and not isinstance(current, dict):
            raise ConfigError(f"override {key!r}: `{head}` is {current!r}, not a mapping; set {head}=... whole instead")
        node = dict(current or {})
        data[head] = node
        parts = rest.split(".")
        for part in parts[:-1]:
            node[part] = dict(node.get(part) or {})
            node = node[part]
        node[parts[-1]] = value
    return data


def load_recipe(source: str | Path | dict[str, Any], overrides: list[str] | None = None) -> Recipe:
    """A recipe from a YAML file, a built-in name (`shakespeare`) or a dict, with overrides applied."""
    if isinstance(source, dict):
        data, name = dict(source), None
    else:
        data, name = _read_recipe_file(source)
    return recipe_from_dict(apply_overrides(data, overrides or []), name=name)
