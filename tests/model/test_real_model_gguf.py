"""The GGUF exit on a real model: SmolLM2-135M-Instruct LoRA-tuned, exported to f16 and q8_0, and
llama.cpp's greedy answers compared with transformers' on 10 test prompts.

The Modelfile is checked against SmolLM2's ChatML written by hand as an Ollama Go template,
with the system turn its template adds to a conversation that has none (the run trained on rows
without a system prompt, so that default is what the model saw in training).
"""

import json

import pytest

from sftflow.model.offline import offline_gguf
from tests.browser import ARTIFACTS
from tests.model.test_gguf import needs_extra
from tests.support import foreign_lines, sftflow

pytestmark = [pytest.mark.slow, needs_extra]

SMOLLM2 = "smollm2-135m-instruct"
N_PROMPTS = 10
WORDS = ["apple", "river", "stone", "cloud", "green", "tiger", "piano", "orange", "silver", "window",
         "garden", "yellow", "bridge", "candle", "forest", "rabbit", "summer", "violin", "castle", "pepper"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A short LoRA run on SmolLM2 (two words in capitals, 80 rows, no system prompt)."""
    offline_gguf(SMOLLM2)  # fetched once per cache
    root = tmp_path_factory.mktemp("smollm2-gguf")
    (root / "raw").mkdir()
    rows = [{"prompt": f"Write '{a} {b}' in capital letters.", "completion": f"{a} {b}".upper()}
            for a in WORDS for b in WORDS[:5] if a != b][:80]
    (root / "raw" / "capitals.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "sftflow.yaml").write_text(
        "data:\n  sources: [{path: raw/capitals.jsonl}]\n  split: {train: 0.6, val: 0.1, test: 0.3}\n"
        f"model: {{name_or_path: {SMOLLM2}}}\n"
        "train: {max_length: 64, epochs: 1, batch_size: 8, grad_accum: 1, learning_rate: 1.0e-3}\n"
        "eval: {max_new_tokens: 12}\n")
    for step in ("prepare", "train"):
        r = sftflow(step, root / "sftflow.yaml", timeout=1200)
        assert r.returncode == 0 and foreign_lines(r.stderr) == [], (step, r.stdout[-2000:], r.stderr)
    return root


def _export(root, quantize: str) -> tuple[dict, str]:
    out = root / f"gguf-{quantize}"
    r = sftflow("export", root / "sftflow.yaml", "--format", "gguf", "--quantize", quantize, "--out", out,
                "--verify", str(N_PROMPTS), timeout=1200)
    assert r.returncode == 0 and foreign_lines(r.stderr) == [], r.stdout[-2000:] + r.stderr
    result = json.loads((out / "verify.json").read_text())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)  # the figures, kept by CI
    (ARTIFACTS / f"smollm2-gguf-{quantize}-verify.json").write_text(json.dumps(result, indent=1))
    return result, (out / "Modelfile").read_text()


def test_f16_gives_transformers_greedy_answers_and_a_modelfile_with_smollm2s_template(tuned):
    result, modelfile = _export(tuned, "f16")
    assert result["prompts"] == N_PROMPTS and result["tokenizer_identical"] == N_PROMPTS
    # f16 rounds the weights a little: an answer may leave transformers' only where two tokens nearly tie
    # (measured: 12 of 12 identical on one run, 9 of 10 on another, 'APPLE CLUSTER' vs 'APPLE CLOUD')
    assert result["identical"] >= N_PROMPTS - 1, [(e["hf"], e["llama_cpp"]) for e in result["examples"]]
    assert (result["largest_logit_gap_where_different"] or 0) < 0.5, result
    default = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    template = ('{{ if not .System }}' + default + '{{ end }}{{ range .Messages }}'
                '{{ if eq .Role "system" }}<|im_start|>system\n{{ .Content }}<|im_end|>\n'
                '{{ else if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n'
                '{{ else if eq .Role "assistant" }}<|im_start|>assistant\n{{ .Content }}<|im_end|>\n'
                '{{ end }}{{ end }}<|im_start|>assistant\n')
    assert f'TEMPLATE """{template}"""\n' in modelfile
    assert "SYSTEM" not in modelfile  # trained without a system prompt: the template's default applies
    assert 'PARAMETER stop "<|im_end|>"\n' in modelfile
    assert all(e["prompt"].startswith(default) for e in result["examples"])  # verified as trained: with it


def test_q8_0_runs_in_llama_cpp_and_mostly_agrees(tuned):
    """q8_0 rounds the weights: a greedy answer may differ where two tokens nearly tie (a short run
    leaves many), so agreement is reported and must stay high; the prompt tokens must be identical.
    Measured: 9 of 12 on a run that half-learned to spell words backwards."""
    result, _ = _export(tuned, "q8_0")
    assert result["prompts"] == N_PROMPTS and result["tokenizer_identical"] == N_PROMPTS
    assert result["identical"] >= N_PROMPTS * 2 // 3, [(e["hf"], e["llama_cpp"]) for e in result["examples"]]
    assert (result["largest_logit_gap_where_different"] or 0) < 2.0, result
