import pytest

from sftflow.data.quality import find_pii, redact, score_messages


def chat(answer, prompt="How do I reset my router?"):
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


GOOD = "Hold the reset button for ten seconds, wait for the lights to blink, then log in again."


def test_clean_answer_scores_one():
    q = score_messages(chat(GOOD))
    assert q.score == 1.0 and q.reasons == []


@pytest.mark.parametrize("answer, reason", [
    ("   ", "empty_answer"),
    ("...", "trivial_answer"),
    ("the router the router the router the router the router the router the router", "repetition"),
    ("Step one is important.\nStep one is important.\nStep one is important.\nDone.", "repeated_lines"),
    ("Hold the reset button â€™ for ten Ã© seconds \ufffd\ufffd\ufffd", "charset_noise"),
    ("As an AI language model, I cannot browse your router settings.", "refusal_boilerplate"),
    ("I'm sorry, but I can't help with that.", "refusal_boilerplate"),
    ("To reset it, first unplug the router from the wall and wait. Then hold the small button at the back "
     "with a paperclip while you plug it back in, and keep holding it for a while until the small front "
     "lights start to", "truncated_answer"),
    ('{"intent": "reset", "steps": [1, 2', "truncated_answer"),
    ("```python\nprint('reset')\n", "truncated_answer"),
    ("How do I reset my router", "answer_copies_prompt"),
    ("TODO: write the answer", "placeholder"),
    ("Lorem ipsum dolor sit amet.", "placeholder"),
    ("N/A", "placeholder"),
    ("<div>Hold</div><br><p>the button</p>&nbsp;", "markup_debris"),
])
def test_each_signal(answer, reason):
    prompt = "How do I reset my router? Please tell me." if reason == "answer_copies_prompt" else "Reset help"
    q = score_messages(chat(answer, prompt))
    assert reason in q.reasons, q


def test_serious_problems_fall_below_default_threshold_mild_ones_do_not():
    assert score_messages(chat("As an AI language model, I cannot do that.")).score < 0.5
    assert score_messages(chat("<div>" + GOOD + "</div><br><br>")).score >= 0.5
    assert score_messages(chat("42")).score == 1.0  # a short answer can be a right answer
    assert score_messages(chat('{"intent": "refund"}')).score == 1.0


def test_pii_found_flagged_redacted_or_dropped():
    text = "Mail jane.doe@example.com or call +1 415-555-0199, card 4111 1111 1111 1111, order #51357."
    kinds = [k for k, _, _ in find_pii(text)]
    assert kinds == ["email", "phone", "card"]  # the order number is not a phone number
    assert redact(text) == "Mail [EMAIL] or call [PHONE], card [CARD_NUMBER], order #51357."
    flagged = score_messages(chat(GOOD, text))
    assert flagged.reasons == ["pii"] and flagged.score == 1.0 and flagged.pii == ["card", "email", "phone"]
    assert score_messages(chat(GOOD, text), pii_mode="drop").score == 0.0
    assert find_pii("card 4111 1111 1111 1112") == []  # fails the Luhn check
