import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sftflow.data.pii import find_pii, redact
from sftflow.data.quality import score_messages


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


# ---- rules added with bench/quality.py (issue 21): hand-written junk, and clean rows near each threshold ----

PASSAGE = ("Passage: Compound interest means you earn interest on your interest. That is why small, regular "
           "savings started young often beat larger savings started late. Start early.\n\n"
           "Quote the sentence that mentions \"savings\".")


@pytest.mark.parametrize("prompt, answer, reason", [
    ("Why was I charged twice?", "refund refund refund refund refund refund refund refund refund refund", "repetition"),
    ("Say thanks", "thank you thank you thank you", "repetition"),
    ("Explain compound interest.", "Compound interest means you earn interest on your interest, so savings grow "
     "faster every year. " + "I hope this helps. " * 5, "repetition"),
    ("Capital of Peru?", "Lima\n\nLima\n\nLima", "repeated_lines"),
    ("How was the film?", "hahahahahahahahahaha", "char_repetition"),
    ("How was the film?", "!!!!!!!!!!!!", "trivial_answer"),  # no letter at all
    ("How was the film?", "aaaaaaaaaaaaaaaaaa", "char_repetition"),
    ("Summarise the email.", "<div><br><br>&nbsp;</div>", "markup_only"),
    ("Summarise the email.", "&lt;br&gt;&lt;br&gt;", "markup_only"),
    ("Summarise the email.", '<span style="font-family:Arial">Hold</span><br><font size="2">the button</font>',
     "markup_heavy"),
    ("Summarise the email.", "\u200b\u200b", "empty_answer"),
    ("Write a function.", "```\n```", "trivial_answer"),
    ("Explain the refund.", "Itâ€™s processed within five business days.", "charset_noise"),
    ("Explain the refund.", "Your refund \ufffd is on its way.", "charset_noise"),
    ("What is 2 + 2?", "I'm not able to answer that question.", "refusal_boilerplate"),
    ("Write a poem.", "I apologize, but I must decline this request.", "refusal_boilerplate"),
    ("Which is the largest planet?", "Jupiter is the largest planet in the", "truncated_answer"),
    ("How do I reset it?", "Here are the steps:", "truncated_answer"),
    ("Write add in JS.", "function add(a, b) {\n  return a +", "truncated_answer"),
    (PASSAGE, "That is why small, regular savings started young", "truncated_answer"),
    ("How do I reset my router?", "Q: How do I reset my router?", "answer_copies_prompt"),
    ("Summarise.", "[your text here]", "placeholder"),
    ("Summarise.", "{{ answer }}", "placeholder"),
    ("Summarise.", "null", "placeholder"),
    ("What is 6 * 7?", "#$%@ x!!&* ^^%$ ~~+= ?!k", "gibberish"),
    ("What is 6 * 7?", "asdf jkl zxcv qwer", "gibberish"),
    ("What is 6 * 7?", "4Qm60tUB tK9rj 8XMmWV", "gibberish"),
    ("Explain how to start running safely.", "Das hängt von mehreren Faktoren ab, aber im Allgemeinen ist es "
     "besser, langsam anzufangen.", "wrong_language"),
    ("Explain how to start running safely.", "Dipende da diversi fattori, ma in generale è meglio cominciare piano.",
     "wrong_language"),
    ("Explain how to start running safely.", "Это зависит от нескольких факторов.", "wrong_language"),
])
def test_new_rules_catch_junk(prompt, answer, reason):
    q = score_messages(chat(answer, prompt))
    assert reason in q.reasons and q.score < 0.5, q


@pytest.mark.parametrize("prompt, answer", [
    ("Which of these numbers are prime: 4, 6, 8?", "None"),  # "none" is an answer, "N/A" a placeholder
    ("Is it any good?", "It is what it is."),  # 5 words, 3 distinct: above the third that marks a loop
    ("How does a clock sound?", "Tick tock tick tock"),  # 4 words, 2 distinct
    ("Write an HTML button.", '<button type="button" class="btn primary">Save</button>'),  # markup asked for
    ("Center a div with CSS.", '```html\n<div class="wrap"><div>Centered</div></div>\n```'),  # markup in code
    ("Write a Jinja template that greets the user.", "<p>Hello, {{ name }}!</p>"),  # {{ }} asked for
    ("Compare two phones in a table.", "| Phone | Price |\n|---|---|\n| A | $300 |\n| B | $450 |"),
    ("Quadratic formula?", "x = (−b ± √(b² − 4ac)) / 2a"),  # symbols with letters: not symbol soup
    ("My order is late.", "I'm sorry to hear that your order is late. Unfortunately we can't ship today, but "
     "it will leave the warehouse tomorrow morning."),  # sorry + can't, but not a refusal
    ("My order is late.", "Thanks for waiting. Your refund is on its way.\n\nBest regards,\nSam"),  # sign-off
    ("Any tips for sleep?", "Here are a few:\n\n- Keep a regular wake-up time\n- Avoid caffeine after lunch\n"
     "- Keep the bedroom cool and dark\n- Put screens away an hour before bed\n- Get daylight in the morning\n"
     "- Limit alcohol in the evening"),  # a long list without full stops is not truncated
    ("Thanks!", "Have a great day! 😊"),
    ("Translate into German: Where is the train station?", "Wo ist der Bahnhof?"),
    ("¿Cómo puedo ahorrar agua en casa?", "Cierra el grifo mientras te cepillas los dientes y repara las fugas."),
    (PASSAGE, "That is why small, regular savings started young often beat larger savings started late."),
    ("Is the Golden Gate Bridge in San Francisco or Los Angeles?", "San Francisco"),
    ("Add error handling.", "```python\n# TODO: retry on timeouts\nresponse = fetch(url)\n```"),  # TODO in code
    ("Where should we eat?", "Crème brûlée at the café costs €5 — delicious."),  # accents are not mojibake
    ("Where is the match?", "SÃO PAULO, at the Morumbi stadium."),
    ("Find files over 100 MB.", "find . -type f -size +100M"),
    ("Which intent? refund, technical_issue, order_status", "technical_issue"),
])
def test_new_rules_leave_clean_answers_near_their_thresholds_alone(prompt, answer):
    q = score_messages(chat(answer, prompt))
    assert q.score == 1.0 and q.reasons == [], q


def test_markup_heavy_is_markup_over_two_fifths_of_the_text():
    light = "<p>" + GOOD + "</p><br>"  # markup under a fifth of the characters: mild debris at most
    heavy = "<p><b>Hold</b></p><br><br><p><i>reset</i></p>"
    assert "markup_heavy" not in score_messages(chat(light)).reasons
    assert {"markup_debris", "markup_heavy"} <= set(score_messages(chat(heavy)).reasons)


def test_every_reason_has_a_penalty_and_a_detail():
    from sftflow.data.quality import DETAILS, PENALTIES

    assert set(PENALTIES) == set(DETAILS)
    assert all(r.isidentifier() and r == r.lower() for r in PENALTIES)  # stable snake_case codes


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=300), min_size=2, max_size=6))
def test_any_text_gets_a_score_in_range_and_known_reasons(texts):
    from sftflow.data.quality import PENALTIES

    roles = ["system", "user", "assistant"] + ["user", "assistant"] * 2
    q = score_messages([{"role": r, "content": t} for r, t in zip(roles[-len(texts):], texts, strict=False)])
    assert 0.0 <= q.score <= 1.0 and set(q.reasons) <= set(PENALTIES)


# Sign-offs phrased apart from bench/quality.py's pool (which the rule was tuned on), plus the issue's own.
SIGN_OFFS = ['P.S. "thanks", bye', "Thanks heaps, bye", "Cheers mate", "Best wishes,\nTom", "Kind regards\nJo Smith",
             "Hope this helps!", "Have a lovely evening", "Warm regards, the Leeds team", "Many thanks for your order",
             "Let me know how it goes", "PS: the warranty card is in the box", "Take care, Priya", "Good luck with it",
             "Thank you for your patience", "Enjoy the new headset"]


def test_answers_ending_in_a_sign_off_are_kept(tmp_path):
    """Issue 30: a valid CSV whose answers sometimes end with a sign-off lost 29 of 200 rows to
    truncated_answer. The file is written from Python objects; at most 2% may go."""
    import csv

    from sftflow.config import parse_config
    from sftflow.data.prepare import prepare

    bodies = ["Your refund for order {i} was sent today and reaches your card in three to five working days.",
              "Order {i} left our warehouse this morning; the tracking link is in your confirmation email.",
              "To reset the headset from order {i}, hold both buttons for ten seconds until the light blinks."]
    rows = []
    for i in range(200):
        answer = bodies[i % 3].format(i=i)
        if i % 3 != 2:  # two answers in three end with a sign-off, after a space, a line break or a blank line
            answer += [" ", "\n", "\n\n"][i % 4 % 3] + SIGN_OFFS[i % len(SIGN_OFFS)]
        rows.append({"prompt": f"Customer {i} asks about order {i}: what happens next?", "completion": answer})
    (tmp_path / "raw").mkdir()
    with open(tmp_path / "raw" / "export.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["prompt", "completion"])
        writer.writeheader()
        writer.writerows(rows)
    cfg = parse_config({"data": {"sources": [{"path": "raw/export.csv"}]}, "model": {"name_or_path": "no-such-model"}},
                       root=tmp_path)
    with pytest.warns(UserWarning):  # too few examples for the playbook, and the like
        stats = prepare(cfg, log=lambda m: None)
    assert stats["rows_read"] == 200
    assert stats["filter_reasons"].get("truncated_answer", 0) <= 4, stats["filter_reasons"]
    assert stats["filtered"] <= 4


@pytest.mark.parametrize("answer", [
    "Your refund was sent today and reaches your card in three to five working days. Best regards, Sam",
    "Order 12 left our warehouse this morning.\n\nRegards\nThe Lyon store team",
    "Reset it by holding both buttons for ten seconds.\nP.S. the manual is online too",
])
def test_a_sign_off_is_no_truncation(answer):
    assert "truncated_answer" not in score_messages(chat(answer)).reasons


@pytest.mark.parametrize("answer", [
    "Your refund was sent today and reaches your card in three to five working days. Have a",
    "Your refund was sent today and reaches your card in three to five working days. Let me know if",
    "Your refund was sent today and reaches your card in three to five working days. The carrier said that",
])
def test_a_cut_inside_the_last_sentence_is_still_truncation(answer):
    assert "truncated_answer" in score_messages(chat(answer)).reasons
