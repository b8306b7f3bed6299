"""`sftflow export --format gguf`: the run as one GGUF file that llama.cpp runs with the
Hugging Face model's answers, and a Modelfile for Ollama.

The oracle is independent of sftflow: the base model plus the run's adapter through PEFT, the
prompt rendered by the tokenizer's own `apply_chat_template`, greedy `generate` from
transformers; llama.cpp (llama-cpp-python) loads the exported file and decodes greedily from
the same prompt tokens. Needs the gguf extra (skipped without it; CI requires it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sftflow.model.gguf import MISSING
from tests.support import SFTFLOW, foreign_lines
from tests.tiny_run import SYSTEM, make_run

N_PROMPTS = 5
MAX_NEW = 24  # tiny_run's eval.max_new_tokens, which verify.json uses too


def _extra_installed() -> bool:
    try:
        import gguf  # noqa: F401
        import llama_cpp  # noqa: F401
        import sentencepiece  # noqa: F401
    except ImportError:
        return False
    return True


needs_extra = pytest.mark.skipif(
    not _extra_installed() and os.environ.get("SFTFLOW_REQUIRE_GGUF") != "1",
    reason="the gguf extra is not installed: pip install -e '.[gguf]'")


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model_dir):
    """A LoRA run (random adapter weights, so merging changes the answers) whose training recorded
    a system prompt, as `sftflow train` writes it to train_summary.json."""
    run_dir = make_run(tmp_path_factory.mktemp("gguf") / "proj", tiny_model_dir, evaluate=False)
    (run_dir / "train_summary.json").write_text(json.dumps({"system_prompt": {"default": SYSTEM, "distinct": 1}}))
    return run_dir


def _export(run_dir: Path, out: Path, *extra: str) -> dict:
    root = run_dir.parents[1]
    r = subprocess.run([SFTFLOW, "export", str(root / "sftflow.yaml"), "--format", "gguf", "--out", str(out),
                        "--verify", str(N_PROMPTS), *extra], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and foreign_lines(r.stderr) == [], r.stdout + r.stderr  # no library line on stderr
    return json.loads((out / "verify.json").read_text())


def _hf_answers(run_dir: Path) -> tuple[list[list[int]], list[list[int]]]:
    """(prompt ids, greedy answer ids up to the end-of-turn token) from transformers + PEFT."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = run_dir.parents[1]
    tok = AutoTokenizer.from_pretrained(str(run_dir / "model"))
    if (run_dir / "model" / "adapter_config.json").exists():
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(root / "tiny-model")),
                                          str(run_dir / "model")).eval()
    else:
        model = AutoModelForCausalLM.from_pretrained(str(run_dir / "model")).eval()
    end = tok.convert_tokens_to_ids("<|im_end|>")
    records = [json.loads(line) for line in (root / "data" / "test.jsonl").read_text().splitlines()][:N_PROMPTS]
    prompts, answers = [], []
    for record in records:
        ids = tok.apply_chat_template(record["messages"][:-1], add_generation_prompt=True, tokenize=True,
                                      return_dict=False)
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=MAX_NEW, eos_token_id=end,
                                 pad_token_id=tok.pad_token_id)[0, len(ids):].tolist()
        prompts.append(ids)
        answers.append(out[:out.index(end)] if end in out else out)
    return prompts, answers


def _llama_answers(gguf_file: Path, prompts: list[list[int]]) -> list[list[int]]:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(gguf_file), n_ctx=512, verbose=False)
    end = llm.token_eos()
    answers = []
    for ids in prompts:
        out = []
        for token in llm.generate(ids, temp=0.0, top_k=1, reset=True):
            if token == end or len(out) == MAX_NEW:
                break
            out.append(token)
        answers.append(out)
    return answers


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory, tiny_model_dir):
    """A fully fine-tuned run that has learned its test answers by heart (80 full-batch steps,
    ~10 s): confident like a real fine-tune on its task, where `run`'s random adapter leaves
    top-2 logit gaps of 0.1 that 8-bit rounding may flip (seen: one of five answers)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir = make_run(tmp_path_factory.mktemp("gguf-tuned") / "proj", tiny_model_dir, method="full", evaluate=False)
    tok = AutoTokenizer.from_pretrained(str(run_dir / "model"))
    model = AutoModelForCausalLM.from_pretrained(str(run_dir / "model"))
    rows = [json.loads(line)["messages"] for line in (run_dir.parents[1] / "data" / "test.jsonl").read_text().splitlines()]
    batch = []
    for messages in rows:
        ids = tok.apply_chat_template(messages, tokenize=True, return_dict=False)
        n = len(tok.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True, return_dict=False))
        batch.append((torch.tensor([ids]), torch.tensor([[-100] * n + ids[n:]])))
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(80):
        optimizer.zero_grad()
        for ids, labels in batch:
            model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
    model.save_pretrained(str(run_dir / "model"))
    return run_dir


@pytest.fixture(scope="module")
def hf(run):
    return _hf_answers(run)


def _exporter(run_dir: Path, tmp_path_factory):
    done = {}

    def export(kind: str):
        if kind not in done:
            out = tmp_path_factory.mktemp("export") / kind
            done[kind] = out, _export(run_dir, out, "--quantize", kind)
        return done[kind]

    return export


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    """export(kind) -> (out folder, verify.json) of the LoRA run, each kind exported once per module."""
    return _exporter(run, tmp_path_factory)


@needs_extra
@pytest.mark.slow
def test_f16_gguf_gives_the_hf_models_greedy_answers(hf, exported):
    out, result = exported("f16")
    prompts, answers = hf
    assert len(answers) == N_PROMPTS and sum(map(len, answers)) > 0  # answers to compare, not empty strings
    assert _llama_answers(out / "model.gguf", prompts) == answers
    assert (result["prompts"], result["identical"], result["tokenizer_identical"]) == (N_PROMPTS,) * 3
    assert sorted(p.name for p in out.iterdir()) == ["Modelfile", "convert.log", "model.gguf", "verify.json"]


@needs_extra
@pytest.mark.slow
def test_q8_0_gives_a_tuned_models_answers_and_q4_k_m_reports_its_agreement(tuned_run, tmp_path_factory):
    prompts, answers = _hf_answers(tuned_run)
    assert all(len(a) > 10 for a in answers)  # whole JSON answers
    export = _exporter(tuned_run, tmp_path_factory)
    q8, q8_result = export("q8_0")  # the converter's own q8_0
    assert _llama_answers(q8 / "model.gguf", prompts) == answers
    assert q8_result["identical"] == N_PROMPTS
    q4, q4_result = export("q4_k_m")  # llama.cpp's quantizer
    got = _llama_answers(q4 / "model.gguf", prompts)
    assert q4_result["identical"] == sum(g == a for g, a in zip(got, answers, strict=True))
    assert (q4 / "model.gguf").stat().st_size < (q8 / "model.gguf").stat().st_size


@needs_extra
@pytest.mark.slow
def test_modelfile_carries_the_training_template_system_prompt_and_stop_token(exported):
    out, _ = exported("f16")
    modelfile = (out / "Modelfile").read_text()
    # sftflow's ChatML, written by hand as an Ollama Go template
    template = ('<|bos|>{{ range .Messages }}{{ if eq .Role "system" }}<|im_start|>system\n{{ .Content }}<|im_end|>\n'
                '{{ else if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n'
                '{{ else if eq .Role "assistant" }}<|im_start|>assistant\n{{ .Content }}<|im_end|>\n'
                '{{ end }}{{ end }}<|im_start|>assistant\n')
    assert "FROM ./model.gguf\n" in modelfile
    assert f'TEMPLATE """{template}"""\n' in modelfile
    assert f'SYSTEM """{SYSTEM}"""\n' in modelfile
    assert 'PARAMETER stop "<|im_end|>"\n' in modelfile


QUICKSTART_RUN = Path(__file__).resolve().parents[2] / "quickstart" / "runs" / "quickstart"


@needs_extra
@pytest.mark.slow
@pytest.mark.skipif(not (QUICKSTART_RUN / "model").is_dir() and os.environ.get("SFTFLOW_REQUIRE_QUICKSTART") != "1",
                    reason="no quickstart run: README command 1 (sftflow init quickstart && sftflow run ...) makes it")
def test_the_quickstart_run_exports_to_a_gguf_that_answers_as_the_hf_model(tmp_path):
    """README command 1's run, exported as a user would after it: llama.cpp's greedy answers to
    the first test prompts equal transformers' on the tuned model."""
    prompts, answers = _hf_answers(QUICKSTART_RUN)
    assert all(len(a) > 10 for a in answers)  # whole JSON answers
    out = tmp_path / "gguf"
    result = _export(QUICKSTART_RUN, out)
    assert _llama_answers(out / "model.gguf", prompts) == answers
    assert (result["prompts"], result["identical"]) == (N_PROMPTS, N_PROMPTS)
    assert 'PARAMETER stop "<|im_end|>"\n' in (out / "Modelfile").read_text()


def test_missing_extra_is_one_line_naming_the_install(tmp_path):
    """With llama_cpp unimportable, the export stops before any work with the pip command."""
    code = ("import sys; sys.modules['llama_cpp'] = None; from sftflow.cli import main; "
            "sys.argv = ['sftflow', 'export', sys.argv[1], '--format', 'gguf', '--out', sys.argv[2]]; main()")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "sftflow.yaml"), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2  # a user error
    assert r.stdout == "" and r.stderr.strip().splitlines() == [f"error: {MISSING}"]
    assert not (tmp_path / "out").exists()


def test_native_crash_in_the_llama_cpp_check_is_one_line_not_a_dead_process():
    """llama.cpp runs in a child process: a segfault there (llama-cpp-python 0.3.36 on quantized
    files, on a CPU with AMX) is a one-line SftflowError naming the signal; a result comes back."""
    from sftflow.errors import SftflowError
    from sftflow.model.gguf import in_child_process

    assert in_child_process("json:dumps", [1, "a"], what="child") == '[1, "a"]'
    with pytest.raises(SftflowError) as crash:
        in_child_process("ctypes:string_at", 0, what="llama.cpp running the q8_0 GGUF model.gguf")  # reads address 0
    assert "SIGSEGV" in str(crash.value) and "q8_0" in str(crash.value) and "\n" not in str(crash.value)
    with pytest.raises(SftflowError, match="child: failed: .*No module named"):
        in_child_process("no_such_module:f", 0, what="child")
