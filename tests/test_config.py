import pytest

from sftflow.config import Config, dump_config, load_config, parse_config
from sftflow.config.commented import commented_yaml
from sftflow.errors import SftflowError

MINIMAL = {"data": {"sources": [{"path": "raw.jsonl"}]}, "model": {"name_or_path": "some/model"}}


def write(tmp_path, text):
    p = tmp_path / "sftflow.yaml"
    p.write_text(text)
    return p


def test_defaults_follow_design():
    cfg = parse_config(MINIMAL)
    t = cfg.train
    assert (t.method, t.lora.r, t.lora.alpha, t.lora.dropout, t.lora.target_modules) == ("lora", 16, 32, 0.0, "all-linear")
    assert t.lr == 2e-4 and t.batch_size * t.grad_accum == 16 and t.epochs == 3
    assert t.early_stopping_patience == 1 and t.padding_free
    assert cfg.data.split.model_dump() == {"train": 0.8, "val": 0.1, "test": 0.1}
    full = parse_config({**MINIMAL, "train": {"method": "full"}})
    assert full.train.lr == 2e-5


def test_unknown_key_suggests_the_right_one():
    with pytest.raises(SftflowError) as e:
        parse_config({**MINIMAL, "train": {"learning_rte": 1e-4}}, "cfg.yaml")
    assert str(e.value) == "cfg.yaml: unknown key 'train.learning_rte' (did you mean 'learning_rate'?)"


def test_unknown_nested_list_key(tmp_path):
    with pytest.raises(SftflowError, match=r"unknown key 'data.sources.0.formt' \(did you mean 'format'\?\)"):
        parse_config({"data": {"sources": [{"path": "a", "formt": "x"}]}, "model": {"name_or_path": "m"}})


def test_wrong_type_and_missing_reported_together():
    with pytest.raises(SftflowError) as e:
        parse_config({"data": {"sources": [{"path": "a"}]}, "model": {}, "train": {"epochs": "three"}}, "c.yaml")
    msg = str(e.value)
    assert "missing required key 'model.name_or_path'" in msg
    assert "'train.epochs': Input should be a valid number" in msg and "(got 'three')" in msg
    assert "\n" not in msg


def test_bad_split_and_gate():
    bad = {**MINIMAL, "data": {"sources": [{"path": "a"}], "split": {"train": 0.9, "val": 0.2, "test": 0.1}}}
    with pytest.raises(SftflowError, match="train \\+ val \\+ test must be 1.0"):
        parse_config(bad)
    with pytest.raises(SftflowError, match="gate exact_match: 'high' is not a comparison"):
        parse_config({**MINIMAL, "eval": {"gates": {"exact_match": "high"}}})


def test_guardrail_warnings():
    with pytest.warns(UserWarning, match="erase what the base model knew"):
        parse_config({**MINIMAL, "train": {"method": "full", "learning_rate": 1e-4}})
    with pytest.warns(UserWarning, match="epochs 5 > 3"):
        parse_config({**MINIMAL, "train": {"epochs": 5}})


def test_full_fine_tuning_lr_guardrail_follows_the_models_own_pre_training_lr(tmp_path):
    """A tenth of the pre-training peak: 3e-5 for LLMs (unknown model: "m"), 3e-4 for a folder
    that records 3e-3 the way sftflow's tiny model does."""
    import json
    import warnings

    model = tmp_path / "tiny"
    model.mkdir()
    (model / "sftflow_tiny.json").write_text(json.dumps({"params": {"learning_rate": 3e-3}}))

    def warned(name, lr):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            parse_config({**MINIMAL, "model": {"name_or_path": name}, "train": {"method": "full", "learning_rate": lr}},
                         root=tmp_path)
        return [str(w.message) for w in caught if "erase what the base model knew" in str(w.message)]

    assert warned("tiny", 3e-4) == [] and warned("m", 3e-5) == []
    assert warned("tiny", 5e-4) == ["train.learning_rate 0.0005 > 0.0003 (a tenth of this model's pre-training "
                                    "learning rate 0.003) in full fine-tuning tends to erase what the base model knew"]
    assert warned("m", 1e-4) == ["train.learning_rate 0.0001 > 3e-05 in full fine-tuning tends to erase what the "
                                 "base model knew"]
    (model / "sftflow_tiny.json").write_text("{not json")  # unreadable: the LLM rule
    assert len(warned("tiny", 1e-4)) == 1


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(SftflowError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    p = write(tmp_path, "data:\n  sources: [\n")
    with pytest.raises(SftflowError, match=r"sftflow.yaml:\d+:\d+: invalid YAML"):
        load_config(p)
    p = write(tmp_path, "- just\n- a list\n")
    with pytest.raises(SftflowError, match="must be a YAML mapping"):
        load_config(p)


def test_paths_resolve_against_config_folder(tmp_path):
    p = write(tmp_path, "name: x\ndata:\n  sources: [{path: raw.jsonl}]\nmodel:\n  name_or_path: m\n")
    cfg = load_config(p)
    assert cfg.data_dir == tmp_path.resolve() / "data"
    assert cfg.run_dir == tmp_path.resolve() / "runs" / "x"
    assert cfg.model_path() == "m"  # no such local folder: a hub id, unchanged
    (tmp_path / "m").mkdir()
    assert cfg.model_path() == str(tmp_path.resolve() / "m")


def test_commented_yaml_round_trips(tmp_path):
    data = {**MINIMAL, "name": "demo", "eval": {"gates": {"exact_match": ">= 0.5"}}}
    text = commented_yaml(data)
    assert "# LoRA rank" not in text  # only keys present are written
    assert "# Hugging Face model id, local folder or .gguf file, or an offline short name (smollm2-135m-instruct) " \
        "(required)" in text
    cfg = load_config(write(tmp_path, text))
    assert cfg.model_dump() == parse_config(data).model_dump()
    resolved = dump_config(cfg)
    assert "learning_rate: 0.0002" in resolved
    assert isinstance(parse_config(__import__("yaml").safe_load(resolved)), Config)


def test_outputs_may_not_climb_out_of_the_project_and_remote_code_is_warned(tmp_path):
    for data, key in (({"output_dir": "../../etc"}, "data.output_dir"), ({"synth": {"output": "a/../../x.jsonl"}},
                                                                          "data.synth.output")):
        with pytest.raises(SftflowError, match=rf"'{key}': leaves the project folder"):
            parse_config({**MINIMAL, "data": {**MINIMAL["data"], **data}})
    with pytest.raises(SftflowError, match=r"'output_dir': leaves the project folder"):
        parse_config({**MINIMAL, "output_dir": ".."})
    cfg = parse_config({**MINIMAL, "output_dir": str(tmp_path / "elsewhere"), "data": {**MINIMAL["data"],
                                                                                        "output_dir": "a/../data"}})
    assert cfg.run_dir.parent == tmp_path / "elsewhere"  # an absolute path is taken as meant
    assert parse_config(MINIMAL).model.trust_remote_code is False
    with pytest.warns(UserWarning, match="trust_remote_code: true runs the Python code"):
        parse_config({**MINIMAL, "model": {**MINIMAL["model"], "trust_remote_code": True}})


def test_pickled_weights_are_refused(tmp_path):
    import torch
    from transformers import LlamaConfig

    from sftflow.model.load import load_model

    LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2).save_pretrained(tmp_path)
    torch.save({"model.embed_tokens.weight": torch.zeros(32, 16)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(SftflowError, match="no .safetensors weights; sftflow does not load pickled weights"):
        load_model(str(tmp_path), None, method="full")
