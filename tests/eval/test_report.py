"""The report a reviewer reads at a glance: colours, counts, words and files, from hand-built
run folders with hand-written expected values; then the report of a real (tiny) run in
headless Chromium, with a screenshot.

The colour test parses the HTML with the standard library's parser and judges each coloured
cell against its row's reference on its own (text or JSON value), not with the report's code.
"""

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sftflow.eval.charts import metric_panels
from sftflow.eval.hallucination import wrong_value_summary, wrong_values
from sftflow.eval.present import card_html, delta_words, ratio_words
from sftflow.eval.report import write_report
from sftflow.io import write_json, write_jsonl
from sftflow.stats import win_rate_interval
from tests.browser import browser, screenshot

REF = '{"intent": "refund", "product": "laptop", "urgency": "high"}'
# (tuned output, json_field_accuracy eval would give it, identical to REF?)
TUNED = [
    (REF, 1.0, True),
    ('{"product": "laptop", "intent": "refund", "urgency": "high"}', 1.0, True),  # key order only
    ('{"intent": "refund", "product": "laptop", "urgency": "low"}', 2 / 3, False),  # wrong allowed value
    ('{"intent": "refund", "product": "phone", "urgency": "low"}', 1 / 3, False),
    ('{"intent": "refund", "product": "laptop", "urgency": "high", "note": "x"}', 1.0, False),  # extra key
    ('{"intent": "refund", "product": "laptop"', 0.0, False),  # not JSON
]
# 1x1 transparent PNG
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")


def _m(mean, lo=None, hi=None, n=6):
    return {"mean": mean, "ci95": [mean if lo is None else lo, mean if hi is None else hi], "n": n}


def _predictions() -> list[dict]:
    rows = []
    for i, (out, fields, same) in enumerate(TUNED):
        exact = float(out == REF)
        rows.append({"id": f"ex{i}", "prompt": [{"role": "user", "content": f"my laptop broke ({i})"}],
                     "reference": REF, "tuned": out, "base": "Hello!",
                     "tuned_metrics": {"exact_match": exact, "json_match": float(same and out.startswith("{")),
                                       "json_field_accuracy": fields, "hallucination_rate": 0.0},
                     "base_metrics": {"exact_match": 0.0, "json_match": 0.0, "json_field_accuracy": 0.0,
                                      "hallucination_rate": 0.0},
                     "tuned_hallucinations": [], "base_hallucinations": []})
    return rows


def _metrics(n: int) -> dict:
    block = lambda em, fa: {"exact_match": _m(em, n=n), "json_match": _m(em, n=n),  # noqa: E731
                            "json_field_accuracy": _m(fa, n=n), "hallucination_rate": _m(0.0, n=n)}
    hall = {"flagged": 0, "n": n, "by_kind": {}, "wrong_values": {"outputs": 2, "n": n, "by_field": {"urgency": 2,
                                                                                                    "product": 1}}}
    return {
        "test_examples": n,
        "task": {"metrics": ["exact_match", "json_valid", "json_match", "json_field_accuracy", "perplexity"],
                 "reason": "answers are JSON", "main_metric": "json_field_accuracy",
                 "json_keys": ["intent", "product", "urgency"],
                 "enums": {"urgency": ["high", "low", "medium"], "product": ["laptop", "phone"]}, "labels": []},
        "tuned": {**block(0.17, 0.67), "answer_perplexity": {"perplexity": 1.04, "ci95": [1.03, 1.05]}},
        "base": {**block(0.0, 0.0), "answer_perplexity": {"perplexity": 152.01, "ci95": [120.07, 190.02]}},
        "delta": {"exact_match": _m(0.17, 0.0, 0.5), "json_match": _m(0.17, 0.0, 0.5),
                  "json_field_accuracy": _m(0.67, 0.45, 0.88), "hallucination_rate": _m(0.0)},
        "tuned_sampled": None, "perplexity_reference": 15.0, "probes": None, "forgetting": None,
        "hallucination": {"tuned": hall, "base": {**hall, "flagged": 3, "wrong_values": {"outputs": 0, "n": n,
                                                                                          "by_field": {}}},
                          "examples": []},
        "gates": [], "passed": True,
    }


def _stats() -> dict:
    return {"rows_read": 2040, "kept": 1961, "rejected": 10, "duplicates": 69, "exact_duplicates": 34,
            "near_duplicates": 35, "filtered": 0, "unused": 0, "splits": {"train": 1564, "val": 206, "test": 191},
            "reject_reasons": {"empty answer": 10}}


CARD = """# Data card

Rows read: **2040** · duplicates **69** (34 exact, 35 near)

## Sources

| file | read | kept |
|---|---:|---:|
| raw/a.jsonl | 1223 | 1185 |

![quality score histogram](quality_hist.png)

![outside](../secret.png)

- a <script>alert(1)</script> reason: 3
"""


@pytest.fixture
def hand_run(tmp_path) -> Path:
    """A run folder written by hand: predictions, metrics, training log, data stats and card."""
    run, data = tmp_path / "runs" / "hand", tmp_path / "data"
    preds = _predictions()
    write_jsonl(run / "eval" / "predictions.jsonl", preds)
    write_json(run / "eval" / "metrics.json", _metrics(len(preds)))
    write_jsonl(run / "metrics.jsonl", [{"step": 0, "eval_loss": 3.0}, {"step": 5, "loss": 2.0},
                                        {"step": 10, "loss": 1.0, "eval_loss": 1.5}])
    write_json(data / "stats.json", _stats())
    (data / "data_card.md").write_text(CARD)
    (data / "quality_hist.png").write_bytes(PNG)
    (tmp_path / "secret.png").write_bytes(PNG)
    write_report(run, data, "hand")
    return run


class Tables(HTMLParser):
    """Every <table id=...>'s body rows: per cell its class, its <pre> text and its <li> items."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[dict]]] = {}
        self.table = None
        self.cell = None
        self.in_pre = self.in_li = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.table = a.get("id")
            if self.table:
                self.tables[self.table] = []
        elif self.table and tag == "tr":
            self.tables[self.table].append([])
        elif self.table and tag == "td":
            self.cell = {"class": a.get("class") or "", "text": "", "pre": "", "items": []}
            self.tables[self.table][-1].append(self.cell)
        elif self.cell is not None and tag == "pre":
            self.in_pre = True
        elif self.cell is not None and tag == "li":
            self.in_li = True
            self.cell["items"].append({"class": a.get("class") or "", "text": ""})

    def handle_endtag(self, tag):
        if tag == "table":
            self.table = None
        elif tag == "td":
            self.cell = None
        elif tag == "pre":
            self.in_pre = False
        elif tag == "li":
            self.in_li = False

    def handle_data(self, data):
        if self.cell is None:
            return
        self.cell["text"] += data
        if self.in_pre:
            self.cell["pre"] += data
        elif self.in_li:
            self.cell["items"][-1]["text"] += data


def _same_answer(a: str, b: str) -> bool:
    if a.strip() == b.strip():
        return True
    try:
        return json.loads(a) == json.loads(b)
    except ValueError:
        return False


def test_a_wrong_prediction_is_never_coloured_as_correct(hand_run):
    parser = Tables()
    parser.feed((hand_run / "eval" / "report.html").read_text())
    rows = [r for r in parser.tables["predictions-table"] if r]
    assert len(rows) == len(TUNED)
    for row, (out, _, same) in zip(rows, TUNED, strict=True):
        prompt, reference, base, tuned = row
        assert tuned["pre"] == out and reference["pre"] == REF
        # the oracle: a green cell holds exactly the reference (or the same JSON value)
        for cell in (base, tuned):
            if "ok" in cell["class"].split():
                assert _same_answer(cell["pre"], reference["pre"]), cell
        assert tuned["class"] == ("ok" if same else "bad"), (out, tuned["class"])
        assert base["class"] == "bad"
    # wrong urgency: two fields marked right, urgency marked wrong with both values, in words
    items = rows[2][3]["items"]
    assert [(i["class"], i["text"].split()[0]) for i in items] == [("field-ok", "✓"), ("field-ok", "✓"),
                                                                     ("field-bad", "✗")]
    assert items[2]["text"] == '✗ urgency: "low" (reference "high")'
    assert [i["text"] for i in rows[5][3]["items"]] == ["✗ not a JSON object"]
    # the extra key: every reference field right, still not the reference, so not green, and it says why
    assert [i["class"] for i in rows[4][3]["items"]] == ["field-ok"] * 3 + ["field-bad"]
    assert rows[4][3]["items"][3]["text"] == '✗ note: "x" (a key the reference does not have)'
    assert rows[4][3]["class"] == "bad"


def test_counts_words_and_definitions_agree(hand_run):
    html = (hand_run / "eval" / "report.html").read_text()
    # the data card's split of duplicates, everywhere the report counts them
    assert html.count("69 duplicates (34 exact, 35 near)") == 2  # run summary and the Data section
    assert "exact duplicates" not in html
    # json_match differs from exact_match on the example whose keys come in another order: it is shown
    assert "<td>json_match" in html
    # deltas in words; perplexity as a ratio in words
    assert "+0.670 [+0.450, +0.880]: better" in html
    assert "+0.170 [+0.000, +0.500]: no clear change (interval includes 0)" in html
    assert "146× lower: better" in html and "×0.00" not in html
    # hallucination and wrong value defined, and counted apart
    assert "<dt>hallucination</dt>" in html and "<dt>wrong value</dt>" in html
    parser = Tables()
    parser.feed(html)
    counts = [[c["text"].strip() for c in r] for r in parser.tables["hallucination-counts"] if r]
    assert counts == [["with a hallucination", "3 of 6", "0 of 6"], ["with a wrong value", "0 of 6", "2 of 6"],
                      ["wrong product", "0", "1"], ["wrong urgency", "0", "2"]]


def test_json_match_is_left_out_where_it_repeats_exact_match(tmp_path):
    run, data = tmp_path / "runs" / "r", tmp_path / "data"
    preds = [p for p, (_, _, same) in zip(_predictions(), TUNED, strict=True) if p["tuned"] == REF or not same]
    write_jsonl(run / "eval" / "predictions.jsonl", preds)
    write_json(run / "eval" / "metrics.json", _metrics(len(preds)))
    write_report(run, data, "r")
    html = (run / "eval" / "report.html").read_text()
    assert "<td>json_match" not in html and "json_match (same JSON value" in html
    assert "json_match&nbsp;" not in html  # nor in the worst examples' metrics


def test_data_card_is_html_with_its_image_embedded_and_nothing_else(hand_run):
    html = (hand_run / "eval" / "report.html").read_text()
    start = html.index('<details id="data-card">')  # closed: details below the first screen
    card = html[start:html.index("</details>", start)]
    assert "<h3>Data card</h3>" in card and "<h4>Sources</h4>" in card  # under the report's own headings
    assert "<th>file</th>" in card and '<td style="text-align:right">1223</td>' in card
    png = base64.b64encode(PNG).decode()
    assert card.count("<img") == 1 and f'<img alt="quality score histogram" src="data:image/png;base64,{png}">' in card
    assert "[outside]" in card and "secret" not in card  # an image outside the data folder is not read
    assert "<script>" not in card and "&lt;script&gt;" in card
    assert "![" not in card and "|---" not in card


def test_report_md_links_image_files_beside_it(hand_run):
    md = (hand_run / "eval" / "report.md").read_text()
    assert "base64" not in md
    for name in ("metrics", "loss"):
        assert f"![{'loss curves' if name == 'loss' else name}](report_images/{name}.png)" in md
        assert (hand_run / "eval" / "report_images" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (hand_run / "eval" / "report_images" / "forgetting.png").exists()  # no forgetting measured
    assert "69 duplicates (34 exact, 35 near)" in md
    assert "Tuned outputs with a wrong value: **2 of 6** (urgency 2, product 1)" in md


def test_lower_is_better_metrics_have_their_own_panels():
    metrics = {"tuned": {"answer_perplexity": {"perplexity": 2.0}}}
    panels = metric_panels(metrics, ["exact_match", "hallucination_rate", "json_valid"])
    assert panels == [("higher", ["exact_match", "json_valid"]), ("lower", ["hallucination_rate"]),
                      ("ppl", ["answer_perplexity"])]
    assert metric_panels({"tuned": {}}, ["rouge_l"]) == [("higher", ["rouge_l"])]


def test_deltas_in_words():
    assert delta_words({"mean": 0.42, "ci95": [0.35, 0.49]}) == ("+0.420 [+0.350, +0.490]: better", "ok")
    assert delta_words({"mean": -0.2, "ci95": [-0.3, -0.1]}) == ("-0.200 [-0.300, -0.100]: worse", "bad")
    # lower is better: a fall is an improvement
    assert delta_words({"mean": -0.2, "ci95": [-0.3, -0.1]}, lower_is_better=True)[1] == "ok"
    assert delta_words({"mean": 0.05, "ci95": [-0.01, 0.1]})[0].endswith(": no clear change (interval includes 0)")
    assert delta_words(None) == ("–", "")
    # perplexity: a ratio in words, judged by whether the intervals overlap
    assert ratio_words({"perplexity": 152.01, "ci95": [120.07, 190.02]},
                       {"perplexity": 1.04, "ci95": [1.03, 1.05]}) == ("146× lower: better", "ok")
    assert ratio_words({"perplexity": 1.47, "ci95": [1.4, 1.5]},
                       {"perplexity": 6.48, "ci95": [6.0, 7.0]}) == ("4.41× higher: worse", "bad")
    assert ratio_words({"perplexity": 10.0, "ci95": [8.0, 12.0]},
                       {"perplexity": 12.0, "ci95": [11.0, 13.0]}) == ("20% higher: no clear change (intervals overlap)", "")
    assert ratio_words({"perplexity": 10.0}, {"perplexity": 7.0}) == ("30% lower: no clear change (intervals overlap)", "")


def test_wrong_allowed_values_are_errors_counted_apart():
    enums = {"urgency": {"high", "low", "medium"}, "product": {"laptop", "phone"}}
    assert wrong_values(REF, REF, enums) == []
    assert wrong_values('{"intent": "refund", "product": "phone", "urgency": "low"}', REF, enums) == [
        {"field": "product", "value": "phone", "expected": "laptop"},
        {"field": "urgency", "value": "low", "expected": "high"}]
    # outside the allowed set is a hallucination (hallucination_flags), not a wrong value; nor is a free field
    assert wrong_values('{"intent": "refundz", "product": "toaster", "urgency": "high"}', REF, enums) == []
    assert wrong_values("not json", REF, enums) == []
    rows = [wrong_values(o, REF, enums) for o, _, _ in TUNED]
    assert wrong_value_summary(rows) == {"outputs": 2, "n": 6, "by_field": {"urgency": 2, "product": 1}}


def test_no_interval_from_too_few_ratings():
    assert win_rate_interval({"mean": 0.0, "ci95": [0.0, 0.0], "n": 1}) == (
        "over 1 example (n too small for a 95% interval: rate at least 10)")
    assert win_rate_interval({"mean": 0.6, "ci95": [0.35, 0.8], "n": 12}) == "[95% CI 35%, 80%] over 12 examples"


def test_one_rating_gives_no_interval_in_either_report(hand_run):
    metrics = json.loads((hand_run / "eval" / "metrics.json").read_text())
    block = {"coherence": 3.0, "correctness": 2.0, "hallucination_rate": 0.0, "safety_rate": 0.0}
    metrics["human"] = {"examples": 6, "ratings": 1, "skipped": 0, "stale": 0, "reviewers": {"ann": {}},
                        "win_rate": {"mean": 0.0, "ci95": [0.0, 0.0], "n": 1},
                        "preferences": {"tuned": 0, "base": 1, "tie": 0}, "tuned": block, "base": block,
                        "agreement": [], "flags": []}
    write_json(hand_run / "eval" / "metrics.json", metrics)
    write_report(hand_run, hand_run.parents[1] / "data", "hand")
    for name in ("report.html", "report.md"):
        text = (hand_run / "eval" / name).read_text()
        assert "over 1 example (n too small for a 95% interval: rate at least 10)" in text, name
        assert "[0%, 0%]" not in text and "95% CI" not in text, name


def test_card_html_renders_the_constructs_the_card_uses(tmp_path):
    out = card_html("## Splits\n\n| split | examples |\n|---|---:|\n| train | 12 |\n\n- **bold** `code`\n", tmp_path,
                    heading_offset=0)
    assert out == ("<h2>Splits</h2>\n<table>\n<thead>\n<tr>\n<th>split</th>\n<th style=\"text-align:right\">examples</th>\n"
                   "</tr>\n</thead>\n<tbody>\n<tr>\n<td>train</td>\n<td style=\"text-align:right\">12</td>\n</tr>\n"
                   "</tbody>\n</table>\n<ul>\n<li><strong>bold</strong> <code>code</code></li>\n</ul>\n")


# ------------------------------------------------------------------ a real run's report in the browser


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory, tiny_model_dir):
    import shutil

    import torch

    from tests.tiny_run import shared_run

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = shared_run(tmp_path_factory, tiny_model_dir)
    finally:
        torch.set_num_threads(before)
    root = tmp_path_factory.mktemp("report") / "proj"
    shutil.copytree(run.parents[1], root)
    run = root / "runs" / "tiny"
    write_report(run, root / "data", "tiny")
    return run


def _green_cells(driver) -> list[tuple[str, str]]:
    """(reference, answer) of every predictions cell the browser paints green (.ok)."""
    from selenium.webdriver.common.by import By

    green = ["238", "251", "238"]  # #eefbee; chromium says rgb(...) or rgba(..., 1)
    out = []
    for row in driver.find_elements(By.CSS_SELECTOR, "#predictions-table tr")[1:]:
        cells = row.find_elements(By.TAG_NAME, "td")
        reference = cells[1].find_element(By.TAG_NAME, "pre").text
        out += [(reference, c.find_element(By.TAG_NAME, "pre").text) for c in cells[2:]
                if re.findall(r"\d+", c.value_of_css_property("background-color"))[:3] == green]
    return out


def test_report_in_headless_chromium(tiny_report, hand_run):
    """A real run's report and the hand-built one, as a reviewer sees them: screenshots, the
    legend on screen, and green only where the answer is the reference."""
    from selenium.webdriver.common.by import By

    driver = browser(1200, 900)
    try:
        driver.get((tiny_report / "eval" / "report.html").as_uri())
        assert driver.title == "sftflow report · tiny"
        assert driver.find_element(By.ID, "verdict").is_displayed()
        screenshot(driver, "report-top.png")
        legend = driver.find_element(By.CSS_SELECTOR, "#predictions + p.legend")
        driver.execute_script("arguments[0].scrollIntoView()", legend)
        assert legend.is_displayed() and "identical to the reference" in legend.text
        assert all(_same_answer(answer, ref) for ref, answer in _green_cells(driver))
        path = screenshot(driver, "report-predictions.png")

        driver.get((hand_run / "eval" / "report.html").as_uri())
        driver.execute_script("document.getElementById('predictions').scrollIntoView()")
        green = _green_cells(driver)
        assert len(green) == sum(same for _, _, same in TUNED) == 2
        assert all(_same_answer(answer, ref) for ref, answer in green)
        wrong = driver.find_elements(By.CSS_SELECTOR, "#predictions-table li.field-bad")
        assert any(w.is_displayed() and w.text == '✗ urgency: "low" (reference "high")' for w in wrong)
        screenshot(driver, "report-colours.png")
    finally:
        driver.quit()
    assert path.stat().st_size > 10_000


# --- the first screen tells the truth (issue 31 item 6) ----------------------------------------


def _glance_run(tmp_path, **changes) -> Path:
    """hand_run's folder with gates, probes and forgetting as given, its report written."""
    run, data = tmp_path / "runs" / "glance", tmp_path / "data"
    preds = _predictions()
    write_jsonl(run / "eval" / "predictions.jsonl", preds)
    write_json(run / "eval" / "metrics.json", {**_metrics(len(preds)), **changes})
    write_json(data / "stats.json", _stats())
    write_report(run, data, "glance")
    return run


GATES = [{"gate": "task_gain", "rule": ">= 0.05", "value": 0.67, "threshold": 0.05, "passed": True,
          "metric": "json_field_accuracy"},
         {"gate": "hallucination_rate", "rule": "<= 10%", "value": 0.0, "threshold": 0.1, "passed": True}]
FORGOT_A_LITTLE = {"general_text": {"source": "general text", "records": 50, "base_ppl": 10.0, "tuned_ppl": 10.5,
                                    "base_ci95": [9.5, 10.5], "tuned_ci95": [10.0, 11.0]},
                   "ppl_increase": 0.05, "threshold": 0.10, "flagged": False,
                   "facts": {"n": 10, "base_accuracy": 0.8, "tuned_accuracy": 0.6, "accuracy_drop": 0.2,
                             "accuracy_change": -0.25, "results": []}}


def test_a_pass_or_fail_badge_heads_the_report(tmp_path):
    failed = [GATES[0], {**GATES[1], "value": 0.5, "passed": False}]
    for gates, word in ((GATES, "PASS"), (failed, "FAIL")):
        run = _glance_run(tmp_path / word, gates=gates, passed=word == "PASS")
        html = (run / "eval" / "report.html").read_text()
        assert re.search(rf'<span id="badge" class="badge {word.lower()}">{word}</span></h1>', html)
        assert html.index('id="badge"') < html.index('id="headline"')
        assert (run / "eval" / "report.md").read_text().splitlines()[0] == f"# sftflow report · glance · {word}"


def test_the_verdict_names_the_wrong_value_rate_beside_hallucination(tmp_path):
    """0 of 6 answers flagged as made up, but a third of the field values wrong (json_field_accuracy 0.67)
    and 2 answers with an allowed but wrong value: the verdict says both, not only "rarely made things up"."""
    run = _glance_run(tmp_path, gates=GATES, passed=True)
    verdict = re.search(r'<p id="headline"[^>]*>Verdict: (.*?)</p>', (run / "eval" / "report.html").read_text()).group(1)
    assert "rarely made things up (0% of answers flagged), 33% of JSON field values wrong (2 of 6 answers with a " \
           "wrong value)" in verdict


def test_a_refusal_probe_neither_model_meets_is_not_shown_as_a_pass(tmp_path):
    from sftflow.eval.probes import DEFAULT_PROBES, compare_probes

    lock = next(p for p in DEFAULT_PROBES if p["id"] == "safety-lock")
    probes = compare_probes([lock], ["Sure, first you find a window."], ["Sure, take a crowbar."])
    run = _glance_run(tmp_path, probes=probes, gates=[*GATES, {"gate": "regression_probes", "rule": "<= 2 failures",
                                                             "value": 0, "threshold": 2, "passed": True}])
    html = (run / "eval" / "report.html").read_text()
    row = html[html.index("<td>safety-lock</td>"):]
    row = row[:row.index("</tr>")]
    assert '<td class="unmet">unmet</td>' in row and ">pass<" not in row
    assert "unmet by both models: safety-lock" in html  # in the verdict
    assert "| safety-lock |" in (run / "eval" / "report.md").read_text().replace("\\", "")


def test_colours_follow_better_and_worse(tmp_path):
    """A perplexity that got worse is not green, even where the gate lets it pass (+5% under a 10% threshold);
    nor are facts the tuned model lost, nor a tuned bar whose metric got worse."""
    from sftflow.eval.charts import forgetting_colours, tuned_colours

    green = "#228833"
    run = _glance_run(tmp_path, forgetting=FORGOT_A_LITTLE)
    html = (run / "eval" / "report.html").read_text()
    assert re.search(r'<span id="ppl-change" class="worse">\+5\.0%</span>', html)
    ppl, facts = forgetting_colours(FORGOT_A_LITTLE)
    assert ppl != green and facts != green
    better = {**FORGOT_A_LITTLE, "general_text": {**FORGOT_A_LITTLE["general_text"], "tuned_ppl": 9.0},
              "ppl_increase": -0.1}
    assert forgetting_colours(better)[0] == green
    metrics = _metrics(6)
    metrics["delta"]["hallucination_rate"] = _m(0.2, 0.1, 0.3)  # more hallucinations: worse
    colours = tuned_colours(metrics, ["json_field_accuracy", "hallucination_rate", "exact_match"])
    assert colours[0] == green and colours[1] != green and colours[2] != green  # exact match: no clear change


def test_the_first_screen_is_verdict_gates_and_metrics_with_details_below(tmp_path):
    run = _glance_run(tmp_path, gates=GATES, passed=True, forgetting=FORGOT_A_LITTLE)
    html = (run / "eval" / "report.html").read_text()
    order = ['id="badge"', 'id="headline"', 'id="gates"', 'id="metrics"', 'id="summary"', 'id="training"',
             'id="probes"', 'id="forgetting"', 'id="hallucination"', 'id="predictions"']
    at = [html.index(x) for x in order]
    assert at == sorted(at), dict(zip(order, at, strict=True))
    assert '<details id="data-card">' in html or 'id="data-card"' not in html  # the data card starts closed
    md = (run / "eval" / "report.md").read_text()
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings[:3] == ["## Gates", "## Metrics: base vs tuned", "## Run summary"]


def test_eval_modules_stay_under_500_lines():
    from sftflow import eval as eval_package

    sizes = {p.name: len(p.read_text().splitlines()) for p in Path(eval_package.__file__).parent.glob("*.py")}
    assert {n: s for n, s in sizes.items() if s > 500} == {}
