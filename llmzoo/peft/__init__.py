"""Parameter-efficient fine-tuning as transforms on a built model (DESIGN.md: "PEFT is a transform").

    model = llmzoo.load("smollm2-135m")
    llmzoo.peft.apply(model, "lora", target_modules=["q_proj", "v_proj"], r=8, lora_alpha=16)
    ...train llmzoo.peft.trainable_parameters(model)...
    llmzoo.peft.save_adapter(model, "adapter/")        # peft's format: PeftModel.from_pretrained reads it
    model = llmzoo.load("smollm2-135m", adapter="adapter/")
    llmzoo.peft.merge(model)                            # plain model again, adapter folded into the weights

Methods ("lora" with rsLoRA/DoRA, "qlora", "ia3", "houlsby", "pfeiffer", ...) are registered in
llmzoo.peft.methods; its docstring says how a new one registers.
"""

from llmzoo.peft.block_expansion import expand_blocks  # also registers the "llama_pro" method
from llmzoo.peft.load import load_adapter
from llmzoo.peft.lora import LoraLinear, LoraSpec
from llmzoo.peft.lora_method import lora_modules
from llmzoo.peft.methods import Method, adapter_modules, methods, register
from llmzoo.peft.peft_format import describe_adapter, read_adapter_config
from llmzoo.peft.save import save_adapter
from llmzoo.peft.transform import apply, disabled, merge, trainable_parameters

__all__ = ["apply", "trainable_parameters", "merge", "disabled", "lora_modules", "adapter_modules", "save_adapter",
           "load_adapter", "read_adapter_config", "describe_adapter", "LoraLinear", "LoraSpec", "Method", "register",
           "methods", "expand_blocks"]
