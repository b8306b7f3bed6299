"""`sftflow export --format NAME` reads the exporters registry (model/export.py): each format is one
entry, with a test here. The merged folder is loaded with plain transformers (no PEFT, no sftflow)
and must give the adapter run's greedy answers; the vLLM folder is that merged model plus its
`vllm serve` command. (GGUF: tests/model/test_gguf.py.)"""

import json

import pytest

from sftflow.errors import SftflowError
from sftflow.model.export import EXPORTERS, ExportOptions, check_options, find_exporter
from tests.support import sftflow
from tests.tiny_run import MESSAGES, SYSTEM


def test_every_format_is_one_registry_entry_that_export_help_lists():
    names = [e.name for e in EXPORTERS]
    assert {"hf", "merged", "vllm", "gguf"} <= set(names) and len(set(names)) == len(names)
    shown = sftflow("export", "--help", columns=200).stdout
    for e in EXPORTERS:
        assert f"{e.name}: {e.writes}" in " ".join(shown.split())  # help is built from the registry


def test_an_unknown_format_or_a_misplaced_option_is_one_line_before_any_work():
    with pytest.raises(SftflowError, match=r"^--format onnx: choose one of hf, merged, vllm, gguf$"):
        find_exporter("onnx")
    assert find_exporter("GGUF").name == "gguf"
    with pytest.raises(SftflowError, match=r"^--quantize applies to --format gguf only$"):
        check_options(find_exporter("merged"), ExportOptions(quantize="q8_0"))
    with pytest.raises(SftflowError, match=r"^--merge applies to --format hf only$"):
        check_options(find_exporter("vllm"), ExportOptions(merge=True))


@pytest.fixture(scope="module")
def run(tiny_model_dir, tmp_path_factory):
    from tests.tiny_run import make_run

    root = tmp_path_factory.mktemp("export-run")
    return root, make_run(root, tiny_model_dir, evaluate=False)


def greedy(model, tok, eos, n: int = 24) -> list[list[int]]:
    import torch

    answers = []
    for text, *_ in MESSAGES:
        chat = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
        ids = tok.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=n, do_sample=False, eos_token_id=eos, pad_token_id=eos[0])
        answers.append(out[0, ids["input_ids"].shape[1]:].tolist())
    return answers


def test_merged_loads_with_plain_transformers_and_answers_as_the_adapter_run(run, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    root, run_dir = run
    out = tmp_path / "merged"
    r = sftflow("export", root / "sftflow.yaml", "--format", "merged", "--out", out)
    assert r.returncode == 0, r.stderr
    assert f"exported merged model: {out}" in r.stdout
    assert not (out / "adapter_config.json").exists() and (out / "generation_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    eos = GenerationConfig.from_pretrained(out).eos_token_id
    eos = [eos] if isinstance(eos, int) else eos
    assert tok.convert_tokens_to_ids("<|im_end|>") in eos  # the turn end training taught stops generation

    adapter_tok = AutoTokenizer.from_pretrained(run_dir / "model")
    base = AutoModelForCausalLM.from_pretrained(root / "tiny-model")
    base_answers = greedy(base, adapter_tok, eos)
    adapter = PeftModel.from_pretrained(base, run_dir / "model")  # not merged: the run as trained
    adapter_answers = greedy(adapter, adapter_tok, eos)
    assert greedy(merged, tok, eos) == adapter_answers
    assert adapter_answers != base_answers  # the adapter changed the answers: the comparison can fail

    again = sftflow("export", root / "sftflow.yaml", "--format", "merged", "--out", out)
    assert again.returncode == 2 and "not empty" in again.stderr


def test_vllm_is_a_merged_folder_with_its_serve_command(run, tmp_path):
    root, run_dir = run
    out = tmp_path / "served"
    r = sftflow("export", root / "sftflow.yaml", "--format", "vllm", "--out", out)
    assert r.returncode == 0, r.stderr
    readme = (out / "README.md").read_text()
    assert f"vllm serve {out.resolve()} --served-model-name tiny" in readme
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] and not (out / "adapter_config.json").exists()
    assert (out / "model.safetensors").exists() and (out / "chat_template.jinja").exists()
