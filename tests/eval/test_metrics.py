import math

import pytest

from sftflow.errors import SftflowError
from sftflow.eval.gates import check_gates, gate_value
from sftflow.eval.metrics import (
    bleu,
    check_schema,
    chrf,
    classification_accuracy,
    corpus_summary,
    exact_match,
    infer_metrics,
    is_label_like,
    json_field_accuracy,
    json_fields,
    json_match,
    json_schema_valid,
    json_valid,
    label_breakdown,
    normalized_exact_match,
    rouge_l,
    schema_errors,
    token_f1,
)
from sftflow.example import Example, Message, Tool, ToolCall
from sftflow.model.output import Reply
from sftflow.stats import bootstrap_ci, paired_delta, summarise


def test_task_metrics():
    assert exact_match(" {\"a\": 1}\n", '{"a": 1}') == 1.0
    assert exact_match('{"a":1}', '{"a": 1}') == 0.0
    assert json_match('{"b": 2, "a":1}', '{"a": 1, "b": 2}') == 1.0
    assert json_match('{"a": 1', '{"a": 1}') == 0.0
    assert json_valid('{"a": [1, 2]}') == 1.0 and json_valid("HELLO") == 0.0


def test_normalized_exact_match_and_token_f1_by_hand():
    assert normalized_exact_match("The  Paris.", "paris") == 1.0
    assert normalized_exact_match("Paris!", "Lyon") == 0.0
    # pred {cat, sat} vs ref {cat, sat, down} after dropping articles: P = 1, R = 2/3, F1 = 0.8
    assert token_f1("the cat sat", "a cat sat down") == pytest.approx(0.8)
    assert token_f1("cat cat", "cat") == pytest.approx(2 * 0.5 * 1 / 1.5)  # repeated words count once each
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0 and token_f1("dog", "cat") == 0.0


def test_rouge_l_by_hand_and_against_rouge_score():
    # LCS of "the cat sat on the mat" / "the cat is on the mat" is 5 of 6 words each way: F = 5/6
    assert rouge_l("the cat sat on the mat", "The cat is on the mat.") == pytest.approx(5 / 6)
    assert rouge_l("a b c d", "d c b a") == pytest.approx(0.25)
    assert rouge_l("", "") == 1.0 and rouge_l("x", "") == 0.0
    from rouge_score import rouge_scorer  # in the dev extra: the reference implementation
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    for pred, ref in [("the quick brown fox", "a quick brown dog jumps"), ("police kill the gunman", "the gunman kill police")]:
        assert rouge_l(pred, ref) == pytest.approx(scorer.score(ref, pred)["rougeL"].fmeasure)


def test_bleu_and_chrf_by_hand():
    # one word changed at the end of five: n-gram precisions 4/5, 3/4, 2/3, 1/2, no brevity penalty
    assert bleu("a b c d f", "a b c d e") == pytest.approx((4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25)
    assert bleu("the cat sat", "the cat sat") == pytest.approx(1.0)
    assert bleu("x y z", "a b c") == pytest.approx(0.0)
    # chrF (orders with n-grams on both sides averaged): P = R = (2/3 + 1/2 + 0) / 3 = 7/18
    assert chrf("abc", "abd") == pytest.approx(7 / 18)
    assert chrf("same text", "same text") == pytest.approx(1.0)


def test_corpus_bleu_matches_sacrebleu_and_has_an_interval_and_delta():
    import sacrebleu

    preds = ["the cat sat on the mat", "a dog barks", "hello there friend", "it is raining today"]
    refs = ["the cat sat on a mat", "the dog barks", "hello there my friend", "it rains today"]
    base = ["cat", "dog", "hi", "rain"]
    out = corpus_summary("bleu", preds, refs, base_preds=base)
    assert out["mean"] == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score / 100)
    assert out["ci95"][0] <= out["mean"] <= out["ci95"][1]
    base_score = sacrebleu.corpus_bleu(base, [refs]).score / 100
    assert out["delta"]["mean"] == pytest.approx(out["mean"] - base_score)
    chrf_out = corpus_summary("chrf", preds, refs)
    assert chrf_out["mean"] == pytest.approx(sacrebleu.corpus_chrf(preds, [refs]).score / 100)


def test_json_field_accuracy_and_schema():
    ref = '{"intent": "refund", "product": "laptop", "urgency": "high"}'
    assert json_field_accuracy('{"intent": "refund", "product": "phone", "urgency": "high"}', ref) == pytest.approx(2 / 3)
    assert json_field_accuracy('{"product": "laptop"}', ref) == pytest.approx(1 / 3)
    assert json_field_accuracy("not json", ref) == 0.0
    assert json_fields('{"intent": "refund"}', ref) == {"intent": 1.0, "product": 0.0, "urgency": 0.0}
    assert json_fields('{"intent": "refund"}', ref, fields=["intent"]) == {"intent": 1.0}

    schema = {"type": "object", "required": ["intent", "urgency"], "additionalProperties": False,
              "properties": {"intent": {"enum": ["refund", "order_status"]}, "urgency": {"type": "string"},
                             "count": {"type": "integer", "minimum": 0}}}
    check_schema(schema)
    assert json_schema_valid('{"intent": "refund", "urgency": "high"}', schema) == 1.0
    assert json_schema_valid('{"intent": "cancel", "urgency": "high"}', schema) == 0.0
    assert schema_errors({"intent": "refund"}, schema) == ["$: missing 'urgency'"]
    assert schema_errors({"intent": "refund", "urgency": "low", "extra": 1}, schema) == ["$: unexpected key 'extra'"]
    assert schema_errors({"intent": "refund", "urgency": "low", "count": -1}, schema) == ["$.count: -1 out of range"]
    assert schema_errors({"intent": "refund", "urgency": 3}, schema) == ["$.urgency: expected string, got int"]
    with pytest.raises(SftflowError, match="unsupported JSON-schema keyword.*oneOf"):
        check_schema({"oneOf": []})


def test_classification_and_label_breakdown():
    assert classification_accuracy("Positive.", "positive") == 1.0
    assert classification_accuracy("negative", "positive") == 0.0
    refs = ["positive", "negative", "positive", "neutral", "positive", "negative"] * 3
    assert is_label_like(refs)
    assert not is_label_like(["The capital of France is Paris.", "Two plus two is four, as everyone knows."])
    out = label_breakdown(["positive", "positive", "banana"], ["positive", "negative", "negative"])
    assert out["by_label"] == {"negative": {"accuracy": 0.0, "n": 2}, "positive": {"accuracy": 1.0, "n": 1}}
    assert out["outside_label_set"] == pytest.approx(1 / 3)


def test_metrics_are_inferred_from_the_answers():
    names, reason = infer_metrics(['{"a": 1}', '{"a": 2}', '{"a": 3}'])
    assert "json_field_accuracy" in names and "perplexity" in names and reason == "answers are JSON"
    assert "json_schema_valid" in infer_metrics(['{"a": 1}'], has_schema=True)[0]
    names, reason = infer_metrics(["spam", "ham", "spam", "ham", "spam", "ham"])
    assert "classification_accuracy" in names and "labels" in reason
    names, reason = infer_metrics(["The sky is blue today.", "Cats like to sleep a lot.", "Paris is in France."])
    assert {"rouge_l", "bleu", "chrf", "token_f1"} <= set(names) and reason == "answers are free text"


def test_bootstrap_interval_contains_mean_and_narrows():
    small = summarise([1.0, 0.0] * 10)
    large = summarise([1.0, 0.0] * 500)
    assert small["ci95"][0] <= 0.5 <= small["ci95"][1]
    assert (large["ci95"][1] - large["ci95"][0]) < (small["ci95"][1] - small["ci95"][0]) / 3
    assert bootstrap_ci([1.0] * 5) == (1.0, 1.0)
    assert all(math.isnan(x) for x in bootstrap_ci([]))


def test_paired_delta_is_tighter_than_unpaired_difference():
    base = [0.0, 1.0] * 20
    tuned = [1.0, 1.0] * 20  # same examples, +1 where base was wrong
    d = paired_delta(tuned, base)
    assert d["mean"] == pytest.approx(0.5) and d["ci95"][0] > 0.2
    same = paired_delta(base, base)
    assert same["mean"] == 0 and same["ci95"] == [0.0, 0.0]


def test_answer_perplexity_counts_answer_tokens_only(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from sftflow.eval.metrics import answer_perplexity
    from sftflow.model.chat import tokenize_chat
    from sftflow.model.load import load_chat

    template = load_chat(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    records = [
        {"messages": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hello! How can I help you today?"}]},
        {"messages": [{"role": "system", "content": "You are a helpful assistant."},
                      {"role": "user", "content": "What is 2 + 3? Please answer with the sum and nothing else at all."},
                      {"role": "assistant", "content": "2 + 3 = 5."}]},
    ]
    # by hand: NLL of each masked (answer) token given everything before it, summed over both examples
    nll, count = 0.0, 0
    for r in records:
        t = tokenize_chat(template, r["messages"])
        ids = torch.tensor([t.input_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
        for pos in range(1, len(t.input_ids)):
            if t.assistant_masks[pos]:
                nll -= logp[pos - 1, t.input_ids[pos]].item()
                count += 1
    out = answer_perplexity(model, template, records, batch_size=2)  # padded batch: padding must not count
    assert out["answer_tokens"] == count
    assert out["perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-4)
    assert out["ci95"][0] <= out["perplexity"] <= out["ci95"][1]
    # a longer prompt changes nothing about which tokens are scored
    longer = [{"messages": [{"role": "user", "content": "Hello there, how are you doing?"}, records[0]["messages"][1]]}]
    assert answer_perplexity(model, template, longer)["answer_tokens"] == answer_perplexity(model, template, records[:1])["answer_tokens"]


def test_gates():
    metrics = {"tuned": {"exact_match": {"mean": 0.8}, "answer_perplexity": {"perplexity": 12.0}},
               "base": {"exact_match": {"mean": 0.1}}}
    assert gate_value(metrics, "exact_match") == 0.8
    assert gate_value(metrics, "base.exact_match") == 0.1
    assert gate_value(metrics, "answer_perplexity.perplexity") == 12.0
    assert gate_value(metrics, "perplexity") == 12.0
    assert gate_value(metrics, "rouge") is None
    results = check_gates(metrics, {"exact_match": ">= 0.8", "answer_perplexity.perplexity": "< 10", "rouge": "> 0"})
    assert [(r["gate"], r["passed"]) for r in results] == [
        ("exact_match", True), ("answer_perplexity.perplexity", False), ("rouge", False)]


def test_run_gates_with_percent_and_failure_counts():
    from sftflow.config.eval import parse_gate

    assert parse_gate("g", "< 10%") == ("<", pytest.approx(0.10))
    assert parse_gate("g", "== 0 failures") == ("==", 0.0)
    assert parse_gate("g", "== 0") == ("==", 0.0)
    with pytest.raises(ValueError, match="not a comparison"):
        parse_gate("g", "< 10 apples")
    metrics = {"tuned": {"hallucination_rate": {"mean": 0.04}}, "probes": {"failures": 0},
               "forgetting": {"ppl_increase": 0.12, "facts": {"accuracy_drop": 0.0}}}
    gates = {"regression_probes": "== 0 failures", "forgetting_ppl_increase": "< 10%", "hallucination_rate": "< 5%",
             "forgetting_fact_drop": "<= 0"}
    results = {r["gate"]: (r["value"], r["passed"]) for r in check_gates(metrics, gates)}
    assert results == {"regression_probes": (0, True), "forgetting_ppl_increase": (0.12, False),
                       "hallucination_rate": (0.04, True), "forgetting_fact_drop": (0.0, True)}
    assert check_gates({"tuned": {}}, {"regression_probes": "== 0"})[0]["passed"] is False  # not measured: fails


def test_the_config_accepts_exactly_the_registered_metrics_and_scores_each(tmp_path):
    """The registry (task_metrics.METRICS) is the one list: the config's choices and message come
    from it, and every name it accepts is scored by evaluate.score (perplexity on the model)."""
    from sftflow.config import load_config
    from sftflow.eval.evaluate import score

    path = tmp_path / "sftflow.yaml"
    path.write_text("name: x\ndata: {sources: [{path: a.jsonl}]}\nmodel: {name_or_path: m}\n"
                    "eval: {metrics: [exact_mach]}\n")
    with pytest.raises(SftflowError) as err:
        load_config(path)
    # the message as it was when config.py held its own list (checked against that tree)
    assert str(err.value) == (
        f"{path}: 'eval.metrics.0': Input should be 'exact_match', 'normalized_exact_match', 'token_f1', 'rouge_l', "
        "'bleu', 'chrf', 'json_valid', 'json_match', 'json_field_accuracy', 'json_schema_valid', "
        "'classification_accuracy', 'tool_call_decision', 'tool_name_match', 'tool_args_match', 'tool_args_valid' "
        "or 'perplexity' (got 'exact_mach')")
    names = ["exact_match", "normalized_exact_match", "token_f1", "rouge_l", "bleu", "chrf", "json_valid", "json_match",
             "json_field_accuracy", "json_schema_valid", "classification_accuracy", "tool_call_decision",
             "tool_name_match", "tool_args_match", "tool_args_valid", "perplexity"]
    path.write_text(path.read_text().replace("[exact_mach]", f"[{', '.join(names)}]"))
    task = {"metrics": list(load_config(path).eval.metrics)}
    tool = Tool("f", "", {"type": "object", "properties": {"a": {"type": "integer"}}})
    call = ToolCall("call_1", "f", '{"a": 1}')
    examples = [Example([Message("user", "q"), Message("assistant", "", (call,))], [tool]),
                Example([Message("user", "q"), Message("assistant", "", (call,))], [tool])]
    replies = [Reply("", None, (ToolCall("", "f", '{"a":1}'),)), Reply("b")]
    per = score(['{"a": 1}', "b"], ['{"a": 1}', "c"], task, {"type": "object"}, replies, examples)
    assert list(per) == [n for n in names if n != "perplexity"]
    # the same answer scores 1 on every metric, an answer sharing nothing with its reference 0
    assert {n: [round(v, 9) for v in values] for n, values in per.items()} == {n: [1.0, 0.0] for n in per}


# --- tool calls and the registry's facts ---------------------------------------------------------

WEATHER = Tool("get_weather", "", {"type": "object", "properties": {"city": {"type": "string"},
                                                                  "unit": {"enum": ["C", "F"]}},
                                   "required": ["city"]})
TIME = Tool("get_time", "", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def _calls(*pairs) -> tuple:
    return tuple(ToolCall(f"call_{i}", name, args) for i, (name, args) in enumerate(pairs))


def _tool_scores(reply_calls: tuple, ref_calls: tuple, content: str = "") -> dict:
    from sftflow.task_metrics import METRICS

    reply, ref = Message("assistant", content, reply_calls), Message("assistant", "", ref_calls)
    return {n: METRICS[n].fn(reply, ref, [WEATHER, TIME])
            for n in ("tool_call_decision", "tool_name_match", "tool_args_match", "tool_args_valid")}


@pytest.mark.parametrize("reply, ref, want", [
    # the right call, arguments in another key order and spacing: right on every count
    (_calls(("get_weather", '{"unit":"C","city":"Oslo"}')), _calls(("get_weather", '{"city": "Oslo", "unit": "C"}')),
     (1, 1, 1, 1)),
    # the right tool, another city: arguments differ but are valid
    (_calls(("get_weather", '{"city": "Lima"}')), _calls(("get_weather", '{"city": "Oslo"}')), (1, 1, 0, 1)),
    # the wrong tool, valid arguments for it
    (_calls(("get_time", '{"city": "Oslo"}')), _calls(("get_weather", '{"city": "Oslo"}')), (1, 0, 0, 1)),
    # the right tool, arguments against the schema (unit K) and arguments that are not JSON
    (_calls(("get_weather", '{"city": "Oslo", "unit": "K"}')), _calls(("get_weather", '{"city": "Oslo", "unit": "K"}')),
     (1, 1, 1, 0)),
    (_calls(("get_weather", '{"city": ')), _calls(("get_weather", '{"city": "Oslo"}')), (1, 1, 0, 0)),
    # a tool nobody declared
    (_calls(("book_flight", "{}")), _calls(("get_weather", '{"city": "Oslo"}')), (1, 0, 0, 0)),
    # no call where one was due; a call where none was; none where none was
    ((), _calls(("get_weather", '{"city": "Oslo"}')), (0, 0, 0, 0)),
    (_calls(("get_weather", '{"city": "Oslo"}')), (), (0, 0, 0, 1)),
    ((), (), (1, 1, 1, 1)),
    # two parallel calls in the other order
    (_calls(("get_time", '{"city": "Oslo"}'), ("get_weather", '{"city": "Oslo"}')),
     _calls(("get_weather", '{"city": "Oslo"}'), ("get_time", '{"city": "Oslo"}')), (1, 1, 1, 1)),
    # one of two calls missing
    (_calls(("get_weather", '{"city": "Oslo"}')),
     _calls(("get_weather", '{"city": "Oslo"}'), ("get_time", '{"city": "Oslo"}')), (1, 0, 0, 1)),
])
def test_tool_call_metrics(reply, ref, want):
    got = _tool_scores(reply, ref)
    assert tuple(got.values()) == tuple(float(w) for w in want)


def test_tool_metrics_are_inferred_when_test_answers_call_tools():
    refs = ['[{"name": "get_weather", "arguments": {"city": "Oslo"}}]', "Hello! How can I help?"]
    names, reason = infer_metrics(refs, calls=1)
    assert names == ["exact_match", "normalized_exact_match", "tool_call_decision", "tool_name_match",
                     "tool_args_match", "tool_args_valid", "perplexity"]
    assert reason == "answers call tools (1 of 2)"
    assert infer_metrics(refs)[0][2:4] == ["token_f1", "rouge_l"]  # without calls: free text, as before


def test_the_registry_carries_each_metrics_facts_and_its_readers_ask_it():
    """Direction, exactness, corpus-level, note and the main/task-gain order are the entry's; the report,
    the gates, eval's main metric and the corpus summaries read them (the side tables are gone)."""
    import sftflow.eval.evaluate as evaluate
    import sftflow.eval.gates as gates
    import sftflow.eval.metrics as metrics
    import sftflow.eval.present as present
    import sftflow.eval.report as report
    from sftflow.eval.charts import metric_panels
    from sftflow.eval.present import is_exact_task
    from sftflow.eval.report import metric_rows
    from sftflow.task_metrics import METRICS, first_metric, lower_is_better

    for module, table in [(present, "LOWER_IS_BETTER"), (present, "EXACT_TASK_METRICS"), (gates, "TASK_GAIN_METRICS"),
                          (evaluate, "MAIN_METRICS"), (metrics, "CORPUS_METRICS"), (report, "NOTES")]:
        assert not hasattr(module, table), table
    assert [n for n, m in METRICS.items() if not m.higher_is_better] == ["perplexity", "hallucination_rate"]
    assert lower_is_better("answer_perplexity") and not lower_is_better("json_fields")
    assert [n for n, m in METRICS.items() if m.corpus] == ["bleu", "chrf"]
    # the orders the two side tables held, unchanged for the metrics they listed, tools first
    main = ["json_field_accuracy", "classification_accuracy", "rouge_l", "token_f1", "normalized_exact_match",
            "exact_match", "json_valid"]
    gain = ["classification_accuracy", "rouge_l", "token_f1", "chrf", "bleu", "exact_match",
            "normalized_exact_match", "json_field_accuracy", "json_valid"]
    for order, names in (("main", main), ("gain", gain)):
        for k in range(len(names)):
            assert first_metric(names[k:], order) == names[k]
        assert first_metric([*names, "tool_args_match"], order) == ("tool_args_match" if order == "main" else names[0])
    tool_task = {"metrics": ["exact_match", "tool_call_decision", "tool_args_match"]}
    assert is_exact_task(tool_task) and not is_exact_task({"metrics": ["exact_match", "rouge_l"]})
    assert gates.task_gain_metric({"task": tool_task}) == "tool_args_match"
    # a new entry is enough: its direction groups it in the charts and its note reaches the table
    assert METRICS["hallucination_rate"].note == "lower is better; defined below"
    assert METRICS["hallucination_rate"].choosable is False
    block = {"mean": 0.5, "ci95": [0.4, 0.6], "n": 10}
    m = {"tuned": {"tool_args_valid": block, "hallucination_rate": block}}
    assert metric_panels(m, ["tool_args_valid", "hallucination_rate"]) == [("higher", ["tool_args_valid"]),
                                                                          ("lower", ["hallucination_rate"])]
    assert [r["note"] for r in metric_rows(m, ["tool_args_valid"])] == ["arguments valid against the tool's schema"]


def test_scoring_tool_calls_reads_each_examples_reference_and_tools():
    from sftflow.eval.evaluate import score

    ex = Example([Message("user", "Weather in Oslo?"),
                  Message("assistant", "", _calls(("get_weather", '{"city": "Oslo"}')))], [WEATHER, TIME])
    chat = Example([Message("user", "Hi"), Message("assistant", "Hello!")], [WEATHER, TIME])
    replies = [Reply("", None, _calls(("get_weather", '{"city":"Oslo"}'))), Reply("Hello!")]
    task = {"metrics": ["exact_match", "tool_call_decision", "tool_args_match", "tool_args_valid"]}
    per = score([r.answer_text for r in replies], [ex.answer_text, chat.answer_text], task, None, replies, [ex, chat])
    assert per == {"exact_match": [1.0, 1.0], "tool_call_decision": [1.0, 1.0], "tool_args_match": [1.0, 1.0],
                   "tool_args_valid": [1.0, 1.0]}
    with pytest.raises(SftflowError, match="tool_call_decision scores tool calls"):
        score(["x"], ["y"], {"metrics": ["tool_call_decision"]}, None)
