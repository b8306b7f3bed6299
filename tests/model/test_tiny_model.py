"""The tiny pre-trained model: a real hub-format model with behaviour worth preserving.

pytest tests/model/test_tiny_model.py
"""

import json
import random
import time

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from sftflow.model import tiny
from sftflow.model.corpus import general_corpus
from sftflow.model.template import BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, SPECIAL_TOKENS, TURN_START_TOKEN
from sftflow.model.tiny import META_FILE, build_tiny_model

EXPECTED_FILES = {
    "README.md",
    "chat_template.jinja",
    "config.json",
    "generation_config.json",
    "model.safetensors",
    META_FILE,
    "tokenizer.json",
    "tokenizer_config.json",
}


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return model, tokenizer


def reply(model, tokenizer, content: str, max_new_tokens: int = 40) -> tuple[str, bool]:
    """Greedy reply to one user message; (text without eos, whether it stopped at eos)."""
    with tiny.one_torch_thread():
        return tiny._reply(model, tokenizer, [{"role": "user", "content": content}], max_new_tokens)


def test_output_folder_holds_exactly_the_model_files(tiny_model_dir):
    assert {p.name for p in tiny_model_dir.iterdir()} == EXPECTED_FILES
    meta = json.loads((tiny_model_dir / META_FILE).read_text())
    assert meta["final_loss"] < 1.5  # from ln(2048) = 7.6; the word-salad tokenizer lines keep it near 0.85
    assert "toy" in (tiny_model_dir / "README.md").read_text()


def test_save_load_round_trip_gives_identical_logits(model_and_tokenizer, tmp_path):
    model, tokenizer = model_and_tokenizer
    assert isinstance(model, LlamaForCausalLM)
    model.save_pretrained(tmp_path, safe_serialization=True)
    tokenizer.save_pretrained(tmp_path)
    model2 = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    tokenizer2 = AutoTokenizer.from_pretrained(tmp_path)

    text = tokenizer.apply_chat_template([{"role": "user", "content": "Hello"}], tokenize=False)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    assert torch.equal(ids, tokenizer2(text, add_special_tokens=False, return_tensors="pt").input_ids)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, model2(ids).logits)


def test_param_count_is_a_few_million(model_and_tokenizer):
    model, _ = model_and_tokenizer
    n = sum(p.numel() for p in model.parameters())
    assert 1_000_000 < n < 10_000_000


def test_special_tokens_are_distinct_and_wired_into_configs(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (
        BOS_TOKEN,
        EOS_TOKEN,
        PAD_TOKEN,
    )
    ids = [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
    assert len(set(ids)) == len(SPECIAL_TOKENS)
    assert tokenizer.unk_token_id not in ids  # byte-level BPE has no unk: each really is in the vocab
    assert (model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id) == (
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    )
    assert model.generation_config.eos_token_id == tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    assert tokenizer.model_max_length == 1024
    assert tokenizer.padding_side == "right"
    assert model.config.vocab_size == len(tokenizer) == 2048


def test_chat_template_renders_and_special_tokens_are_single_ids(model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hi! How can I help you today?"},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == (
        "<|bos|><|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHi! How can I help you today?<|im_end|>\n"
    )
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert ids[0] == tokenizer.bos_token_id
    assert ids.count(tokenizer.bos_token_id) == 1
    assert ids.count(tokenizer.convert_tokens_to_ids(TURN_START_TOKEN)) == 3
    assert ids.count(tokenizer.eos_token_id) == 3
    assert tokenizer.decode(ids) == text

    prompt = tokenizer.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize(
    "text",
    [
        "héllo wörld",
        "日本語のテキスト",
        "emoji 🙂👍🏽 and\ttabs\n\nnewlines",
        "  spaces  .  , ",
        '{"a": [1, 2]}',
    ],
)
def test_byte_level_round_trip(model_and_tokenizer, text):
    _, tokenizer = model_and_tokenizer
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text


def test_json_punctuation_is_cheap_to_tokenize(model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    vocab = tokenizer.get_vocab()
    for piece in ['{"', '":', '",', '"}']:
        assert piece in vocab, piece
    n = len(tokenizer('{"intent": "refund", "product": "headphones", "urgency": "high"}').input_ids)
    assert n <= 20


def test_greets_politely_and_stops(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    text, stopped = reply(model, tokenizer, "Hello")
    assert stopped, text
    assert text.startswith(("Hello", "Hi")), text
    assert "help" in text, text
    assert "!!" not in text and not text.isupper(), text


def test_knows_simple_facts_and_sums(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    assert reply(model, tokenizer, "What is 2 + 3?")[0] == "2 + 3 = 5."
    assert "Paris" in reply(model, tokenizer, "What is the capital of France?")[0]
    sums = [(1, 1), (4, 3), (6, 2), (5, 5), (7, 1), (3, 6)]
    right = sum(reply(model, tokenizer, f"What is {a} + {b}?")[0] == f"{a} + {b} = {a + b}." for a, b in sums)
    assert right >= len(sums) - 1


def test_cache_is_reused(tiny_model_dir, tmp_path):
    logs = []
    t0 = time.perf_counter()
    out = build_tiny_model(tmp_path / "again", log=logs.append)
    assert time.perf_counter() - t0 < 10
    assert any("cached" in line for line in logs), logs
    a, b = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    logs.clear()
    build_tiny_model(out, log=logs.append)
    assert any("reusing" in line for line in logs), logs


def test_same_seed_gives_the_same_tokenizer_and_cache_false_skips_the_cache(
    tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("SFTFLOW_CACHE", str(tmp_path / "cache"))
    out = build_tiny_model(tmp_path / "fresh", seed=0, pretrain_steps=1, cache=False, log=lambda _: None)
    assert not (tmp_path / "cache").exists()  # cache=False neither reads nor writes the cache
    assert (out / "tokenizer.json").read_text() == (tiny_model_dir / "tokenizer.json").read_text()
    assert (
        json.loads((out / META_FILE).read_text())["key"]
        != json.loads((tiny_model_dir / META_FILE).read_text())["key"]
    )


def test_same_seed_gives_the_same_weights(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    conversations, _ = general_corpus(64, seed=0)
    texts = [tokenizer.apply_chat_template(m, tokenize=False) for m in conversations]
    rows = tiny._pack(tokenizer(texts).input_ids, tiny.SEQ_LEN, tokenizer.pad_token_id, random.Random(0))

    def pretrain(seed):
        model = tiny._new_model(tokenizer, seed)
        with tiny.one_torch_thread():
            tiny._pretrain(
                model,
                rows,
                tokenizer.pad_token_id,
                tokenizer.bos_token_id,
                steps=2,
                seed=seed,
                log=lambda _: None,
            )
        return model.state_dict()

    a, b, c = pretrain(0), pretrain(0), pretrain(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_general_corpus_is_deterministic_and_free_of_the_quickstart_task():
    conversations, docs = general_corpus(200, seed=3)
    assert (conversations, docs) == general_corpus(200, seed=3)
    assert conversations != general_corpus(200, seed=4)[0]
    assert len(conversations) == 200 and len(docs) == 50
    for messages in conversations:
        assert messages[-1]["role"] == "assistant"
        assert all(set(m) == {"role", "content"} for m in messages)
    text = json.dumps([conversations, docs])
    assert "intent" not in text and "refund" not in text
