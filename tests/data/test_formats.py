from pathlib import Path

import pytest

from sftflow.errors import RowError
from sftflow.formats import convert_row

SYS = {"role": "system", "content": "Answer in JSON."}


def conv(row, fmt="auto", **kw):
    return convert_row(row, fmt, **kw)


def test_alpaca_instruction_and_input_are_one_user_turn_never_a_system_prompt():
    """As Alpaca's own prompt writes them: the instruction, a blank line, the input (issue 28, item 2)."""
    fmt, rec = conv({"instruction": "Answer in JSON.", "input": "my phone broke", "output": "{}"})
    assert fmt == "alpaca"
    assert rec["messages"] == [{"role": "user", "content": "Answer in JSON.\n\nmy phone broke"},
                               {"role": "assistant", "content": "{}"}]


def test_alpaca_without_input_and_with_system():
    _, rec = conv({"instruction": "Say hi", "input": "", "output": "Hi!"})
    assert rec["messages"] == [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi!"}]
    _, rec = conv({"instruction": "Translate", "input": "chat", "output": "cat", "system": "Be brief."})
    assert rec["messages"][0] == {"role": "system", "content": "Be brief."}
    assert rec["messages"][1] == {"role": "user", "content": "Translate\n\nchat"}


def test_alpaca_and_chat_of_same_example_are_identical():
    _, a = conv({"instruction": "Classify.", "input": "my phone broke", "output": "{}", "system": "Answer in JSON."})
    _, b = conv({"messages": [SYS, {"role": "user", "content": "Classify.\n\nmy phone broke"},
                              {"role": "assistant", "content": "{}"}]})
    assert a == b


def test_sharegpt_multi_turn():
    row = {"conversations": [
        {"from": "system", "value": "S"}, {"from": "human", "value": "a"}, {"from": "gpt", "value": "b"},
        {"from": "human", "value": "c"}, {"from": "gpt", "value": "d"}]}
    fmt, rec = conv(row)
    assert fmt == "sharegpt"
    assert [m["role"] for m in rec["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert rec["messages"][-1]["content"] == "d"


def test_prompt_completion_plain_and_conversational():
    fmt, rec = conv({"prompt": "2+2?", "completion": "4"})
    assert fmt == "prompt_completion"
    assert rec["messages"] == [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    _, rec = conv({"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "assistant", "content": "yo"}]})
    assert rec["messages"][-1] == {"role": "assistant", "content": "yo"}


def test_text_needs_opt_in():
    with pytest.raises(RowError, match="allow_text: true"):
        conv({"text": "some prose"})
    assert conv({"text": "some prose"}, allow_text=True) == ("text", {"text": "some prose"})


def test_mapping_and_system_prompt():
    fmt, rec = conv({"question": "q", "answer": "a"}, "prompt_completion",
                    mapping={"prompt": "question", "completion": "answer"}, system_prompt="Be nice.")
    assert rec["messages"][0] == {"role": "system", "content": "Be nice."}
    assert rec["messages"][1:] == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        ({"instruction": "x", "output": ""}, "output", "empty"),
        ({"instruction": "x", "output": 5}, "output", "must be a string, got int"),
        ({"instruction": "x", "input": "y"}, None, "unknown format"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "messages", "no assistant reply"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role", "unknown role 'robot'"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}, "messages[1].role",
         "expected assistant, got user"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "  "}]},
         "messages[1].content", "empty assistant message"),
        ({"messages": "hello"}, "messages", "must be a list of messages, got str"),
        ({"conversations": [{"from": "human"}]}, "conversations[0].value", "must be a string, got missing"),
    ],
)
def test_bad_rows_name_field_and_reason(row, field, reason):
    with pytest.raises(RowError) as e:
        conv(row)
    assert e.value.field == field
    assert reason in e.value.reason


def test_non_object_row():
    with pytest.raises(RowError, match="row must be an object/record, got list"):
        conv([1, 2])


def test_unknown_format_reason_is_one_line_even_with_newlines_in_field_names():
    from sftflow.errors import RowError
    from sftflow.formats import convert_row

    with pytest.raises(RowError) as err:
        convert_row({"a\nb": 1, "c": 2}, "auto")
    assert "\n" not in err.value.reason and "a\\nb" in err.value.reason


def test_unknown_format_reason_gives_the_mapping_line_to_paste():
    from sftflow.errors import RowError
    from sftflow.formats import convert_row

    with pytest.raises(RowError) as caught:
        convert_row({"ticket_id": "17", "message": "my laptop is cracked", "label_json": '{"product": "laptop"}'},
                    "auto")
    assert caught.value.reason.startswith("unknown format (fields: label_json, message, ticket_id): set "
                                          "`mapping: {prompt: message, completion: label_json}` on this source")
    # and the line it suggests does read the row
    fmt, record = convert_row({"message": "hi", "label_json": "{}"}, "auto",
                              mapping={"prompt": "message", "completion": "label_json"})
    assert fmt == "prompt_completion" and record["messages"][-1]["content"] == "{}"


@pytest.mark.parametrize(
    ("row", "fmt"),
    [
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
          "instruction": "x", "output": "y"}, "messages"),
        ({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
          "instruction": "x", "output": "y"}, "sharegpt"),
        ({"instruction": "x", "output": "y", "prompt": "p", "completion": "c"}, "alpaca"),
        ({"prompt": "p", "completion": "c", "text": "t"}, "prompt_completion"),
    ],
)
def test_auto_detection_tries_the_formats_in_their_rank_order(row, fmt):
    assert convert_row(row, "auto")[0] == fmt


def test_the_unknown_format_reason_lists_what_each_format_is_recognised_by():
    with pytest.raises(RowError) as err:
        convert_row({"question": 1}, "auto")
    assert err.value.reason == ("unknown format (fields: question): set the source's format or mapping in the config; "
                                "formats: messages, conversations, instruction+output, prompt+completion or text")


def test_the_config_offers_the_registered_formats_in_the_same_words():
    """config.py reads its format choices from formats.FORMATS; the message a typo gets is unchanged."""
    from sftflow.config import parse_config
    from sftflow.errors import SftflowError

    with pytest.raises(SftflowError) as err:
        parse_config({"data": {"sources": [{"path": "a.jsonl", "format": "alpacca"}]}, "model": {"name_or_path": "m"}},
                     root=Path("."))
    assert str(err.value) == ("config: 'data.sources.0.format': Input should be 'auto', 'alpaca', 'sharegpt', "
                              "'messages', 'prompt_completion' or 'text' (got 'alpacca')")
    for name in ("auto", "alpaca", "sharegpt", "messages", "prompt_completion", "text"):
        parse_config({"data": {"sources": [{"path": "a.jsonl", "format": name}]}, "model": {"name_or_path": "m"}},
                     root=Path("."))
