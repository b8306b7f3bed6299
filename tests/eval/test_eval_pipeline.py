"""`sftflow eval` end to end on two tiny runs: full fine-tuning at the default learning rate and
at a far too high one. Forgetting, gates and exit codes, and the report in headless Chromium."""

import json
import random
from pathlib import Path

import pytest
import yaml

from tests import support
from tests.browser import browser

STEPS = 8
pytestmark = pytest.mark.slow


def sftflow(*args):
    return support.sftflow(*args, env={"OMP_NUM_THREADS": "1"})  # a shared 2-core machine: one thread never spin-waits


def _write_splits(data_dir: Path, n: int = 300) -> None:
    """Quickstart-style examples (message -> JSON), written as prepared splits."""
    from sftflow.io import write_jsonl
    from sftflow.quickstart import SYSTEM_PROMPT, label_to_json, make_example

    rng = random.Random(7)
    rows = []
    for i in range(n):
        message, label = make_example(rng)
        rows.append({"id": f"ex{i:04d}", "messages": [
            {"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": message},
            {"role": "assistant", "content": label_to_json(label)}]})
    write_jsonl(data_dir / "train.jsonl", rows[: int(0.8 * n)])
    write_jsonl(data_dir / "val.jsonl", rows[int(0.8 * n) : int(0.9 * n)])
    write_jsonl(data_dir / "test.jsonl", rows[int(0.9 * n) :])


def _config(root: Path, name: str, model: Path, lr: float | None, eval_cfg: dict) -> Path:
    train = {"method": "full", "batch_size": 16, "grad_accum": 1, "max_length": 256, "early_stopping_patience": 0,
             "extra": {"max_steps": STEPS, "eval_steps": STEPS, "save_steps": STEPS}}
    if lr is not None:
        train["learning_rate"] = lr
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "data": {"sources": [{"path": "raw.jsonl"}]}, "model": {"name_or_path": str(model)},
        "train": train, "eval": {"max_examples": 24, "max_new_tokens": 32, "batch_size": 24, **eval_cfg}}))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    from sftflow.config import load_config
    from sftflow.model.tiny import one_torch_thread
    from sftflow.quickstart import INTENTS, PRODUCTS, URGENCIES
    from sftflow.train.trainer import train

    root = tmp_path_factory.mktemp("evalproj")
    _write_splits(root / "data")
    schema = {"type": "object", "required": ["intent", "product", "urgency"], "additionalProperties": False,
              "properties": {"intent": {"enum": list(INTENTS)}, "product": {"enum": list(PRODUCTS)},
                             "urgency": {"enum": list(URGENCIES)}}}
    gentle = _config(root, "gentle", tiny_model_dir, None, {
        "json_schema": schema, "sample": {"temperature": 0.7, "seed": 1},
        # 8 steps at lr 2e-5 learn nothing: the default task_gain gate is switched off here
        "gates": {"forgetting_ppl_increase": "< 10%", "regression_probes": "== 0 failures",
                  "hallucination_rate": "<= 100%", "task_gain": "off"}})
    hot = _config(root, "hot", tiny_model_dir, 5e-2, {
        "gates": {"forgetting_ppl_increase": "< 10%", "regression_probes": "== 0 failures", "json_valid": ">= 0"}})
    with one_torch_thread():
        for path in (gentle, hot):
            with pytest.warns(UserWarning) if path is hot else _no_warning():
                cfg = load_config(path)
            train(cfg, log=lambda m: None)
    return {"root": root, "gentle": gentle, "hot": hot,
            "gentle_eval": sftflow("eval", str(gentle)), "hot_eval": sftflow("eval", str(hot))}


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _metrics(runs, name):
    return json.loads((runs["root"] / "runs" / name / "eval" / "metrics.json").read_text())


def test_gates_pass_with_exit_0_and_fail_with_exit_1_in_one_line(runs):
    ok, bad = runs["gentle_eval"], runs["hot_eval"]
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "eval: gate regression_probes == 0 failures: 0 → pass" in ok.stdout
    assert bad.returncode == 1, bad.stdout + bad.stderr
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in bad.stderr, bad.stderr
    assert errors[0].startswith("error: gates failed: ") and "forgetting_ppl_increase (" in errors[0]
    assert "needs < 10%" in errors[0] and "regression_probes (" in errors[0] and "json_valid" not in errors[0]
    # every gate is printed, the default ones included, and a one-sentence verdict says why
    assert "eval: gate task_gain off (eval.gates: task_gain: off)" in ok.stdout
    assert "eval: verdict: " in ok.stdout and ok.stdout.split("eval: verdict: ")[1].split("\n")[0].endswith(": pass")
    assert "eval: gate forgetting_fact_drop <= 10%: " in bad.stdout
    verdict = bad.stdout.split("eval: verdict: ")[1].split("\n")[0]
    assert "forgot general knowledge" in verdict and verdict.endswith(": fail"), verdict


def test_bad_gate_rule_is_a_one_line_config_error(runs, tmp_path):
    data = yaml.safe_load(runs["gentle"].read_text())
    data["eval"]["gates"] = {"forgetting_ppl_increase": "below ten percent"}
    path = runs["root"] / "badgate.yaml"
    path.write_text(yaml.safe_dump(data))
    r = sftflow("eval", str(path))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "gate forgetting_ppl_increase: 'below ten percent' is not a comparison" in r.stderr


def test_too_high_learning_rate_forgets_more(runs):
    gentle, hot = _metrics(runs, "gentle")["forgetting"], _metrics(runs, "hot")["forgetting"]
    assert gentle["ppl_increase"] < 0.1 < hot["ppl_increase"], (gentle["ppl_increase"], hot["ppl_increase"])
    assert hot["flagged"] and not gentle["flagged"]
    assert hot["facts"]["tuned_accuracy"] < gentle["facts"]["tuned_accuracy"]
    assert gentle["facts"]["base_accuracy"] == hot["facts"]["base_accuracy"] > 0.6  # the base knows its facts
    assert _metrics(runs, "hot")["probes"]["failures"] > 0


def test_metrics_json_and_predictions(runs):
    m = _metrics(runs, "gentle")
    assert m["task"]["reason"] == "answers are JSON" and m["task"]["main_metric"] == "json_field_accuracy"
    assert {"exact_match", "normalized_exact_match", "json_valid", "json_field_accuracy", "json_schema_valid",
            "hallucination_rate"} <= set(m["tuned"])
    assert set(m["tuned"]["json_fields"]) == {"intent", "product", "urgency"}
    assert m["task"]["enums"]["urgency"] == ["high", "low", "medium"]
    for name, d in m["delta"].items():
        assert d["ci95"][0] <= d["mean"] <= d["ci95"][1], name
    assert m["tuned_sampled"] and m["sampling"]["temperature"] == 0.7
    rows = [json.loads(line) for line in (runs["root"] / "runs" / "gentle" / "eval" / "predictions.jsonl").open()]
    assert len(rows) == 24 and {"base", "tuned", "tuned_sampled", "tuned_hallucinations"} <= set(rows[0])
    assert rows[0]["tuned_metrics"].keys() == rows[0]["base_metrics"].keys()


def test_report_renders_its_sections_in_headless_chromium(runs):
    from selenium.webdriver.common.by import By

    from sftflow.eval.probes import DEFAULT_PROBES

    report = runs["root"] / "runs" / "gentle" / "eval" / "report.html"
    html = report.read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html  # opens offline
    driver = browser(1200, 900)
    try:
        driver.get(report.as_uri())
        assert driver.title == "sftflow report · gentle"
        headings = {h.get_attribute("id"): h.text for h in driver.find_elements(By.CSS_SELECTOR, "h2[id]")}
        for section in ("summary", "verdict", "metrics", "training", "probes", "forgetting", "hallucination", "worst",
                        "data", "predictions"):
            assert section in headings and driver.find_element(By.ID, section).is_displayed(), section
        body = driver.find_element(By.TAG_NAME, "body").text
        assert f"0 of {len(DEFAULT_PROBES)} probes failed" in body
        assert "General-text perplexity" in body and "tuned, sampled" in body and "field urgency" in body
        assert "lr 2e-05" in body and "parameters (100.00%)" in body  # run summary: hyperparameters, trainable
        images = driver.find_elements(By.TAG_NAME, "img")
        assert {i.get_attribute("alt") for i in images} >= {"metrics", "loss curves", "forgetting"}
        assert all(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
                   for i in images)
        probe_rows = driver.find_elements(By.CSS_SELECTOR, "#probes + p + table tr")
        assert len(probe_rows) == len(DEFAULT_PROBES) + 1  # header + one row per probe, side by side
        ledger = driver.find_element(By.LINK_TEXT, "ledger.sqlite").get_attribute("href")
        assert ledger.endswith("/data/ledger.sqlite")
    finally:
        driver.quit()
    md = report.with_name("report.md").read_text()
    for heading in ("## Run summary", "## Metrics: base vs tuned", "## Regression probes", "## Forgetting",
                    "## Hallucination checks", "## Worst test examples", "## Data"):
        assert heading in md
