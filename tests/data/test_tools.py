"""Tool-calling conversations read, checked and kept whole (issue 28, items 1-3): every row of a realistic
tool-calling file is kept or rejected for a stated reason, and a kept row's tools and calls reach the data
folder and the ledger."""

import json
import sqlite3

import pytest

from sftflow.config import parse_config
from sftflow.data.prepare import prepare
from sftflow.errors import RowError
from sftflow.example import Example, Message, ToolCall
from sftflow.formats import convert_example, convert_row
from tests.data.tool_rows import KINDS, TOOLS, calls_in, tool_rows


def test_every_row_of_the_tool_file_is_kept_or_rejected_for_its_stated_reason():
    for raw, (kind, kept, field, reason) in tool_rows():
        if kept:
            _, ex = convert_example(raw, "auto")
            assert [(c.name, json.loads(c.arguments)) for m in ex.messages for c in m.tool_calls] == calls_in(raw), kind
            assert [t.to_dict() for t in ex.tools] == TOOLS
        else:
            with pytest.raises(RowError) as err:
                convert_row(raw, "auto")
            assert (err.value.field, err.value.reason) == (field, reason), kind


def test_a_call_only_turn_and_its_result_are_typed_and_round_trip():
    raw, _ = tool_rows(2)[1]  # call_only
    _, rec = convert_row(raw, "auto")
    assert rec["tools"] == TOOLS
    assistant, result = rec["messages"][2], rec["messages"][3]
    assert assistant == {"role": "assistant", "content": "", "tool_calls": raw["messages"][2]["tool_calls"]}
    assert result == {"role": "tool", "content": raw["messages"][3]["content"], "tool_call_id": "call_1a"}
    ex = Example.from_dict(rec)
    assert ex.to_dict() == rec and ex.answer.content == raw["messages"][4]["content"]
    assert ex.messages[2].tool_calls == (ToolCall("call_1a", "get_weather", raw["messages"][2]["tool_calls"][0]
                                                  ["function"]["arguments"]),)
    # chat templates get the arguments as an object; the data folder keeps OpenAI's JSON text
    assert ex.template_messages()[2]["tool_calls"][0]["function"]["arguments"] == calls_in(raw)[0][1]


def test_an_answer_that_only_calls_a_tool_is_its_calls_as_text():
    raw, _ = tool_rows(6)[5]  # ends_on_call
    _, ex = convert_example(raw, "auto")
    assert ex.answer.tool_calls and json.loads(ex.answer_text) == [{"name": "get_weather",
                                                                     "arguments": calls_in(raw)[0][1]}]


def test_parts_are_joined_and_weight_zero_is_kept_as_context():
    rows = tool_rows(8)
    _, parts = convert_example(rows[6][0], "auto")
    assert parts.messages[1].content == rows[6][0]["messages"][1]["content"][0]["text"] + "\nShort answer please."
    _, weighted = convert_row(rows[7][0], "auto")
    assert weighted["messages"][2]["train"] is False and "weight" not in weighted["messages"][2]
    assert "train" not in weighted["messages"][4]


@pytest.mark.parametrize(("row", "field", "reason"), [
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}]},
     "messages", "no assistant reply to learn from (every assistant turn has weight 0)"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0.5}]},
     "messages[1].weight", "must be 0 or 1, got 0.5"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]},
     "messages[1].tool_calls[0].function.name", "calls 'f', but the row declares no tools"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": "{}"}}]}], "tools": [{"name": "f"}]},
     "messages[1].tool_calls[0].id", "missing (a call needs an id that its tool result names)"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c2", "content": "r"}, {"role": "assistant", "content": "a"}],
      "tools": [{"name": "f"}]},
     "messages[2].tool_call_id", "'c2' answers no call of the assistant turn before it"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
      "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}]},
     "tools[0].function.parameters", "not a valid JSON schema: 'objekt' is not valid under any of the given schemas"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": None,
                                                       "function_call": {"name": "f", "arguments": "{}"}}]},
     "messages[1].function_call", "OpenAI's legacy function_call is not read; write the call as tool_calls "
                                  "[{id, type: function, function: {name, arguments}}]"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]},
                   {"role": "assistant", "content": "a"}]},
     "messages[0].content[0]", "audio part (input_audio) — sftflow trains text-only models; drop the part or "
                               "describe it in text"),
])
def test_tool_faults_name_field_and_reason(row, field, reason):
    with pytest.raises(RowError) as err:
        convert_row(row, "auto")
    assert (err.value.field, err.value.reason) == (field, reason)


def test_sharegpt_function_call_and_observation_turns_with_a_tools_column():
    row = {"conversations": [
        {"from": "human", "value": "Weather in Oslo?"},
        {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": "Oslo"}})},
        {"from": "observation", "value": '{"temp": 3}'},
        {"from": "gpt", "value": "3 degrees in Oslo."}],
        "tools": json.dumps([t["function"] for t in TOOLS])}
    fmt, ex = convert_example(row, "auto")
    assert fmt == "sharegpt" and [t.to_dict() for t in ex.tools] == TOOLS
    assert ex.messages[1] == Message("assistant", "", (ToolCall("call00001", "get_weather", '{"city": "Oslo"}'),))
    assert ex.messages[2] == Message("tool", '{"temp": 3}', tool_call_id="call00001")


def test_alpaca_history_becomes_earlier_turns():
    _, rec = convert_row({"instruction": "And tomorrow?", "output": "Rain.",
                          "history": [["Weather today?", "Sunny."]]}, "auto")
    assert [(m["role"], m["content"]) for m in rec["messages"]] == [
        ("user", "Weather today?"), ("assistant", "Sunny."), ("user", "And tomorrow?"), ("assistant", "Rain.")]


def test_fields_the_reader_does_not_read_are_carried_not_dropped():
    _, rec = convert_row({"messages": [{"role": "user", "content": "q", "name": "ann", "lang": "en"},
                                       {"role": "assistant", "content": "a"}], "ticket": 7}, "auto")
    assert rec["meta"] == {"ticket": 7}
    assert rec["messages"][0] == {"role": "user", "content": "q", "name": "ann", "lang": "en"}
    assert Example.from_dict(rec).to_dict() == rec


def test_prepare_keeps_every_tool_call_in_the_data_folder_and_the_ledger(tmp_path):
    rows = tool_rows()
    (tmp_path / "tools.jsonl").write_text("".join(json.dumps(r) + "\n" for r, _ in rows))
    cfg = parse_config({"data": {"sources": [{"path": "tools.jsonl"}], "dedup": {"near": False},
                                 "quality": {"enabled": False}},
                        "model": {"name_or_path": "m"}}, root=tmp_path)
    stats = prepare(cfg, log=lambda m: None)
    want_kept = sum(kept for _, (_, kept, _, _) in rows)
    assert (stats["rows_read"], stats["kept"], stats["rejected"]) == (120, want_kept, 120 - want_kept)
    rejects = {r["line"]: (r["field"], r["reason"]) for r in map(json.loads, (cfg.data_dir / "rejects.jsonl")
                                                                 .read_text().splitlines())}
    assert rejects == {i + 1: (f, r) for i, (_, (_, kept, f, r)) in enumerate(rows) if not kept}
    kept = {r["source"]["line"]: r for s in ("train", "val", "test")
            for r in map(json.loads, (cfg.data_dir / f"{s}.jsonl").read_text().splitlines())}
    assert set(kept) == {i + 1 for i, (_, (_, k, _, _)) in enumerate(rows) if k}
    for line, rec in kept.items():
        raw = rows[line - 1][0]
        assert rec["tools"] == TOOLS and calls_in(rec) == calls_in(raw)
    db = sqlite3.connect(cfg.data_dir / "ledger.sqlite")
    details = dict(db.execute("SELECT source_line, detail FROM decisions WHERE decision = 'kept'"))
    two_steps = next(i + 1 for i, (_, (k, *_)) in enumerate(rows) if k == "two_steps")
    assert details[two_steps].endswith("; tools: get_weather, get_time; calls: get_weather ×2")
    assert len(KINDS) == 13


def test_an_alpaca_file_with_inputs_has_no_system_prompts_in_the_data_card(tmp_path):
    """Issue 28, item 2: five instructions, each with inputs, used to become five system prompts."""
    rows = [{"instruction": f"Task {t}: classify the message.", "input": f"message {t}-{k} about order {k}",
             "output": f"label {k % 3}"} for t in range(5) for k in range(12)]
    (tmp_path / "alpaca.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = parse_config({"data": {"sources": [{"path": "alpaca.jsonl"}], "dedup": {"near": False},
                                 "quality": {"enabled": False}},
                        "model": {"name_or_path": "m"}}, root=tmp_path)
    stats = prepare(cfg, log=lambda m: None)
    assert stats["system_prompts"]["top"] == [["", 60]]  # one census entry: no system prompt at all
    assert "System prompts: 1 distinct (most common: 60× '')." in (cfg.data_dir / "data_card.md").read_text()
    kept = [json.loads(x) for x in (cfg.data_dir / "train.jsonl").read_text().splitlines()]
    assert all(r["messages"][0]["role"] == "user" and "\n\nmessage " in r["messages"][0]["content"] for r in kept)
