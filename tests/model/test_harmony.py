"""gpt-oss's harmony replies read apart (issue 29): analysis → reasoning, final → answer, never glued."""

from sftflow.model.harmony import parse

REPLY = ("<|channel|>analysis<|message|>User asks X. Answer briefly.<|end|>"
         "<|start|>assistant<|channel|>final<|message|>Paris.<|return|>")


def test_a_reply_is_read_by_channel_not_glued():
    assert parse(REPLY) == ("User asks X. Answer briefly.", "Paris.", True)
    assert parse("<|channel|>final<|message|>Sure, here is it.<|return|><|endoftext|>") == \
        (None, "Sure, here is it.", True)


def test_a_reply_still_being_written_shows_only_what_is_known():
    cut = REPLY.index("final")  # the final header not yet complete: no answer yet
    assert parse(REPLY[:cut]) == ("User asks X. Answer briefly.", "", False)
    assert parse(REPLY[: REPLY.index("Paris") + 3]) == ("User asks X. Answer briefly.", "Par", True)
    assert parse("<|channel|>analysis<|message|>Thinking") == ("Thinking", "", False)  # cut by max_tokens


def test_text_without_channels_is_all_answer():
    assert parse("Paris.<|return|>", ("<|return|>",)) == (None, "Paris.", True)
