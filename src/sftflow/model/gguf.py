"""Export a run for llama.cpp, Ollama and LM Studio: one GGUF file, a Modelfile, and a check.

    sftflow export sftflow.yaml --format gguf --out gguf/ [--quantize q8_0|q4_k_m]
    cd gguf && ollama create my-model -f Modelfile && ollama run my-model

The run is merged into a plain Hugging Face folder (model/export.py), converted by llama.cpp's
own `convert_hf_to_gguf.py` (f16, or q8_0 straight from the converter), and for q4_k_m
quantized by llama.cpp itself through llama-cpp-python's `llama_model_quantize`. The converter
is not on PyPI as a package: it ships in the llama-cpp-python source distribution, so the
first export takes it (with the `gguf-py` it was written against) from the sdist of the
installed llama-cpp-python version, through pip, into the sftflow cache — converter and
runtime then come from the same llama.cpp commit. `SFTFLOW_LLAMA_CPP=/path/to/llama.cpp`
uses a checkout instead.

Then the GGUF is checked, not trusted: llama.cpp and the Hugging Face model both answer the
first test-split prompts greedily from the same prompt tokens (rendered with the training
template and system prompt), and verify.json records how many answers are identical and
whether llama.cpp's own tokenizer gives the same prompt tokens (Ollama and LM Studio tokenize
the text themselves).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from sftflow.data_folder import TEST
from sftflow.errors import SftflowError
from sftflow.example import Example
from sftflow.io import cache_root

MISSING = "GGUF export needs the gguf extra: pip install 'sftflow[gguf]'"
QUANTIZE = ("f16", "q8_0", "q4_k_m")
GGUF_FILE = "model.gguf"
CONVERTER_FILES = ("convert_hf_to_gguf.py", "conversion", "gguf-py")
# Hugging Face's ByteLevel pre-tokenizer with its regex is GPT-2's split, which llama.cpp calls "gpt-2".
GPT2_PRE = "gpt-2"


def require_extra() -> None:
    try:
        import gguf  # noqa: F401
        import llama_cpp  # noqa: F401
        import sentencepiece  # noqa: F401  (llama.cpp's Llama converter imports it even for BPE vocabularies)
    except ImportError as err:
        raise SftflowError(MISSING) from err


def converter_dir(log) -> Path:
    """A folder with llama.cpp's convert_hf_to_gguf.py, its conversion/ package and gguf-py/."""
    if os.environ.get("SFTFLOW_LLAMA_CPP"):
        path = Path(os.environ["SFTFLOW_LLAMA_CPP"]).expanduser()
        if not (path / "convert_hf_to_gguf.py").is_file():
            raise SftflowError(f"SFTFLOW_LLAMA_CPP={path}: no convert_hf_to_gguf.py there; point it at a llama.cpp checkout")
        return path
    from importlib.metadata import version

    release = version("llama-cpp-python")
    dest = cache_root() / f"llama-cpp-convert-{release}"
    if all((dest / name).exists() for name in CONVERTER_FILES):
        return dest
    log(f"taking llama.cpp's converter from the llama-cpp-python {release} source distribution (once; pip download)")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
               f"llama-cpp-python=={release}", "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if proc.returncode or not sdists:
            last = (proc.stderr.strip().splitlines() or ["no sdist downloaded"])[-1]
            raise SftflowError(f"cannot fetch the llama-cpp-python {release} sdist for its converter ({last}); "
                               "or set SFTFLOW_LLAMA_CPP to a llama.cpp checkout")
        staging = Path(tmp) / "converter"
        _extract_converter(sdists[0], staging)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.move(str(staging), dest)  # complete or absent: a half-extracted folder never sits in the cache
    return dest


def _extract_converter(sdist: Path, staging: Path) -> None:
    with tarfile.open(sdist) as tar:
        members = []
        for member in tar.getmembers():
            parts = Path(member.name).parts  # llama_cpp_python-X/vendor/llama.cpp/<file>...
            if len(parts) > 3 and parts[1:3] == ("vendor", "llama.cpp") and parts[3] in CONVERTER_FILES:
                member.name = str(Path(*parts[3:]))
                members.append(member)
        if not members:
            raise SftflowError(f"{sdist.name}: no vendor/llama.cpp/convert_hf_to_gguf.py inside; "
                               "set SFTFLOW_LLAMA_CPP to a llama.cpp checkout")
        tar.extractall(staging, members=members, filter="data")


def bpe_pre_tokenizer(model_dir: Path) -> str:
    """"gpt-2" when tokenizer.json pre-tokenizes exactly as GPT-2 does, else "" (leave it to the converter).

    The converter names a BPE pre-tokenizer by hashing the tokens of a probe text, so it knows
    only published vocabularies and refuses any other (sftflow's tiny model included), even
    when the split rule is plain GPT-2. Only that case is filled in; llama.cpp's tokenizer is
    then compared with the Hugging Face one in verify.json.
    """
    try:
        spec = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    pre = spec.get("pre_tokenizer") or {}
    plain = (pre.get("type") == "ByteLevel" and pre.get("use_regex", True) and not pre.get("add_prefix_space")
             and spec.get("normalizer") is None and (spec.get("model") or {}).get("type") == "BPE")
    return GPT2_PRE if plain else ""


def convert(model_dir: Path, out_file: Path, outtype: str, log_file: Path, log) -> None:
    """llama.cpp's converter in a subprocess (it inserts its own gguf-py into sys.path and sets up logging)."""
    conv = converter_dir(log)
    cmd = [sys.executable, "-m", "sftflow.model.gguf", str(conv), bpe_pre_tokenizer(model_dir), str(model_dir),
           "--outfile", str(out_file), "--outtype", outtype]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]),
                                                         os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    log_file.write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if proc.returncode or not out_file.is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SftflowError(f"llama.cpp's converter failed: {last} (full log: {log_file})")


def _run_converter(argv: list[str]) -> None:
    """Subprocess entry: run convert_hf_to_gguf.py, naming the BPE pre-tokenizer it does not recognise."""
    import runpy

    conv, pre, args = Path(argv[0]), argv[1], argv[2:]
    sys.path[:0] = [str(conv), str(conv / "gguf-py")]  # the converter's own gguf-py, as the script does
    if pre:
        from conversion.base import TextModel  # the converter's package (llama.cpp >= 2026)

        recognise = TextModel.get_vocab_base_pre

        def get_vocab_base_pre(self, tokenizer):
            try:
                return recognise(self, tokenizer)
            except NotImplementedError:  # an unpublished vocabulary with GPT-2's split rule
                return pre

        TextModel.get_vocab_base_pre = get_vocab_base_pre
    sys.argv = [str(conv / "convert_hf_to_gguf.py"), *args]
    runpy.run_path(sys.argv[0], run_name="__main__")


def quantize(src: Path, dest: Path, kind: str) -> None:
    """llama.cpp's own quantizer (llama-cpp-python binds `llama_model_quantize`)."""
    import llama_cpp

    ftypes = {"q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M}
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftypes[kind]
    if llama_cpp.llama_model_quantize(str(src).encode(), str(dest).encode(), params) != 0:
        raise SftflowError(f"llama.cpp could not quantize {src} to {kind}")


# Ollama's TEMPLATE is a Go text/template, not Jinja: it can wrap each message by its role, but
# not run a template's logic (folding the system prompt into the first user turn, dropping
# reasoning, dates). So the wrapping is read off the training template by rendering marked
# messages, and used only if it reproduces the training rendering exactly on the check
# conversations; otherwise the Modelfile has no TEMPLATE and the export says so.
MARKS = {"system": "SFTFLOWSYSTEMMARK", "user": "SFTFLOWUSERMARK", "assistant": "SFTFLOWASSISTANTMARK"}


def _pieces(text: str, marks: list[str]) -> list[str] | None:
    """The text between consecutive marks (len(marks) + 1 pieces), or None if one is missing."""
    pieces = []
    for mark in marks:
        head, sep, text = text.partition(mark)
        if not sep:
            return None
        pieces.append(head)
    return [*pieces, text]


def _without(text: str, prefix: str = "", suffix: str = "") -> str | None:
    if not text.startswith(prefix) or not text.endswith(suffix) or len(prefix) + len(suffix) > len(text):
        return None
    return text[len(prefix):len(text) - len(suffix)]


def role_wrapping(chat) -> dict | None:
    """{"preamble", "default_system", "generation", role: (before, after)} such that a prompt renders as
    preamble + (default_system when it has no system message) + before+content+after per message +
    generation; None where the template is not of that shape. `default_system` is the system turn a
    template adds by itself to a conversation without one (SmolLM2's ChatML: "You are a helpful AI
    assistant named SmolLM ..."), "" for most templates."""
    from sftflow.model.chat import render

    msg = lambda role, n="": {"role": role, "content": MARKS[role] + n}  # noqa: E731
    one_user = render(chat, [msg("user")])
    turns = _pieces(render(chat, [msg("system"), msg("user", "1"), msg("assistant", "1"), msg("user", "2"),
                                  msg("assistant", "2")]),
                   [MARKS["system"], MARKS["user"] + "1", MARKS["assistant"] + "1", MARKS["user"] + "2",
                    MARKS["assistant"] + "2"])
    first = _pieces(one_user, [MARKS["user"]])
    generation = _without(render(chat, [msg("user")], add_generation_prompt=True), one_user)
    if turns is None or first is None or generation is None:
        return None
    a_after, u_after = turns[5], first[1]
    u_before = _without(turns[3], a_after)
    preamble = _without(first[0], suffix=u_before or "") if u_before is not None else None
    if preamble is None:
        return None
    default_system = ""
    s_before, s_after = _without(turns[0], preamble), _without(turns[1], suffix=u_before)
    if s_before is None and s_after is not None:  # what comes before a lone user turn is a system turn of its own
        default_system, preamble = preamble, ""
        s_before = turns[0]
        if _without(default_system, s_before, s_after) is None:
            return None
    parts = {"preamble": preamble, "default_system": default_system, "generation": generation,
             "assistant": (_without(turns[2], u_after), a_after), "user": (u_before, u_after),
             "system": (s_before, s_after)}
    return None if any(x is None for v in parts.values() for x in (v if isinstance(v, tuple) else [v])) else parts


def ollama_template(chat, checks: list[list[dict]]) -> str | None:
    """A Go template equal to the training template on every check conversation, or None. A
    template's default system turn becomes `{{ if not .System }}...{{ end }}`: Ollama sets .System
    from the conversation's system message, or from the Modelfile's SYSTEM when it has none."""
    from sftflow.model.chat import render

    w = role_wrapping(chat)
    if w is None:
        return None
    literals = [w["preamble"], w["default_system"], w["generation"], *(t for r in MARKS for t in w[r])]
    if any("{{" in t or "}}" in t or '"""' in t for t in literals):
        return None
    sample = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
              {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}]
    for messages in [sample, sample[1:], *checks]:
        if any(m["role"] not in MARKS for m in messages):
            return None
        default = "" if any(m["role"] == "system" for m in messages) else w["default_system"]
        ours = w["preamble"] + default + "".join(w[m["role"]][0] + m["content"] + w[m["role"]][1] for m in messages)
        if ours + w["generation"] != render(chat, messages, add_generation_prompt=True):
            return None
    # One line, no {{- trimming: the literal newlines of the wrapping are part of the prompt.
    branches = "{{ else if".join(f' eq .Role "{r}" }}}}{w[r][0]}{{{{ .Content }}}}{w[r][1]}' for r in MARKS)
    default = f"{{{{ if not .System }}}}{w['default_system']}{{{{ end }}}}" if w["default_system"] else ""
    return (f"{w['preamble']}{default}{{{{ range .Messages }}}}{{{{ if{branches}{{{{ end }}}}{{{{ end }}}}"
            f"{w['generation']}")


def modelfile(template: str | None, system: str | None, stops: list[str]) -> str:
    lines = ["# Ollama: ollama create NAME -f Modelfile && ollama run NAME (written by sftflow export --format gguf)",
             f"FROM ./{GGUF_FILE}"]
    if template is None:
        lines.append("# No TEMPLATE: the training chat template does not translate to Ollama's Go template;"
                     " Ollama will guess one from the GGUF's tokenizer.chat_template.")
    else:
        lines.append(f'TEMPLATE """{template}"""')
    if system:
        if '"""' in system:
            raise SftflowError('the training system prompt contains """, which a Modelfile cannot quote')
        lines.append(f'SYSTEM """{system}"""')  # the training system prompt, as serve/chat/eval add it
    lines += [f'PARAMETER stop "{s}"' for s in stops]  # the template's end-of-turn token(s)
    return "\n".join(lines) + "\n"


def test_prompts(cfg, n: int, system: str | None) -> list[list[dict]]:
    """The first n test-split prompts, with the training system prompt where they have none."""
    from sftflow.io import read_jsonl
    from sftflow.model.chat import prompt_messages
    from sftflow.model.system_prompt import with_system

    path = cfg.data_dir / TEST
    if not path.is_file():
        raise SftflowError(f"{path}: no test split to verify the GGUF on; run `sftflow prepare`, or pass --verify 0")
    prompts = []
    for record in read_jsonl(path):
        if not Example.of(record).is_text and len(prompts) < n:
            prompts.append(with_system(prompt_messages(record), system))
    return prompts


def verify(gguf_file: Path, hf_dir: Path, prompts: list[list[dict]], max_new_tokens: int, quantize: str = "") -> dict:
    """Greedy answers of llama.cpp and of the Hugging Face model from the same prompt tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sftflow.model.chat import render
    from sftflow.model.chat_template import ChatTemplate
    from sftflow.model.reasoning import joined, reply_parts

    def decode_reply(chat, ids, prompt: str) -> str:  # read apart per family, as eval reads a reply
        return joined(*reply_parts(chat, ids, prompt)).strip()

    tok = AutoTokenizer.from_pretrained(str(hf_dir))  # the exported folder as any reader loads it
    chat = ChatTemplate(tok)
    model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32).eval()
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    rendered = [render(chat, p, add_generation_prompt=True) for p in prompts]
    ids = [tok(text, add_special_tokens=False)["input_ids"] for text in rendered]
    answers = in_child_process(
        "sftflow.model.gguf:llama_cpp_answers", {"gguf": str(gguf_file), "texts": rendered, "ids": ids,
                                                "eos": sorted(eos), "max_new_tokens": max_new_tokens,
                                                "threads": torch.get_num_threads()},
        what=f"llama.cpp running the {quantize} GGUF {gguf_file}".replace("  ", " "))
    examples = []
    for text, prompt, (gg, own) in zip(rendered, ids, answers, strict=True):
        with torch.no_grad():
            out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                 do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=sorted(eos),
                                 pad_token_id=tok.pad_token_id)
        hf = _until(out[0, len(prompt):].tolist(), eos)
        example = {"prompt": text, "hf": decode_reply(chat, hf, text), "llama_cpp": decode_reply(chat, gg, text),
                   "identical": hf == gg, "llama_cpp_tokenizer_identical": own == prompt}
        if hf != gg:
            example["first_difference"] = _first_difference(model, prompt, hf, gg, min(eos))
        examples.append(example)
    gaps = [e["first_difference"]["logit_gap"] for e in examples if "first_difference" in e]
    return {"prompts": len(examples), "identical": sum(e["identical"] for e in examples),
            "tokenizer_identical": sum(e["llama_cpp_tokenizer_identical"] for e in examples),
            "largest_logit_gap_where_different": max(gaps, default=None),
            "max_new_tokens": max_new_tokens, "examples": examples}


def _first_difference(model, prompt: list[int], hf: list[int], gg: list[int], eos: int) -> dict:
    """Where llama.cpp's greedy answer first leaves transformers', and by how much transformers
    preferred its own token there (logits): a small gap is a near tie that weight rounding (f16,
    q8_0) may flip; a large one means the GGUF computes something else."""
    import torch

    at = next(i for i in range(max(len(hf), len(gg))) if i >= min(len(hf), len(gg)) or hf[i] != gg[i])
    mine = hf[at] if at < len(hf) else eos
    theirs = gg[at] if at < len(gg) else eos
    with torch.no_grad():
        logits = model(torch.tensor([prompt + hf[:at]])).logits[0, -1]
    return {"at": at, "logit_gap": round(float(logits[mine] - logits[theirs]), 4)}


def llama_cpp_answers(job: dict) -> list:
    """llama.cpp's greedy answer tokens for each prompt, and its own tokenization of the prompt text."""
    import llama_cpp

    eos = set(job["eos"])
    llm = llama_cpp.Llama(model_path=job["gguf"], n_ctx=max(map(len, job["ids"])) + job["max_new_tokens"] + 8, seed=0,
                          n_threads=job["threads"], verbose=False)
    answers = []
    for text, prompt in zip(job["texts"], job["ids"], strict=True):
        gg = []
        for token in llm.generate(prompt, temp=0.0, top_k=1, reset=True):
            if token in eos:
                break
            gg.append(token)
            if len(gg) >= job["max_new_tokens"]:
                break
        # add_bos=True lets llama.cpp add BOS only where the GGUF says to, as its server does
        answers.append([gg, llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)])
    return answers


def in_child_process(target: str, job, *, what: str):
    """`module:function`(job) in a child Python, its JSON result back. Native code that crashes
    there (llama-cpp-python 0.3.36 was seen to segfault on quantized files on a CPU with AMX)
    becomes one line naming the signal, not a dead sftflow."""
    import signal

    code = ("import json, sys, importlib; m, f = sys.argv[1].split(':'); "
            "print(json.dumps(getattr(importlib.import_module(m), f)(json.load(sys.stdin))))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]),
                                                         os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code, target], input=json.dumps(job), capture_output=True, text=True,
                          env=env)
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise SftflowError(f"{what}: crashed with {name} inside native code (the file is written; a build of "
                           "llama-cpp-python for this CPU, another --quantize, or --verify 0 avoids the check)")
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SftflowError(f"{what}: failed: {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _until(ids: list[int], eos: set[int]) -> list[int]:
    for i, token in enumerate(ids):
        if token in eos:
            return ids[:i]
    return ids


def export_gguf(cfg, out_dir: Path, *, quantize_to: str = "f16", n_verify: int = 5, log=print) -> dict:
    """merge -> convert (-> quantize) -> Modelfile -> verify; returns verify.json's content."""
    from sftflow.model.export import export_model
    from sftflow.model.load import load_chat
    from sftflow.model.system_prompt import training_system_prompt

    require_extra()
    if quantize_to not in QUANTIZE:
        raise SftflowError(f"--quantize {quantize_to}: choose one of {', '.join(QUANTIZE)}")
    if cfg.train.method == "qlora":
        raise SftflowError("a QLoRA adapter cannot be merged into its 4-bit base exactly; retrain with method lora "
                           "to export GGUF")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise SftflowError(f"{out_dir}: not empty; choose another --out folder")
    system = training_system_prompt(cfg.run_dir)
    prompts = test_prompts(cfg, n_verify, system) if n_verify else []
    out_dir.mkdir(parents=True, exist_ok=True)
    hf_dir = out_dir / "merged-hf"  # the merged Hugging Face model: converted, verified against, removed
    try:
        export_model(cfg.run_dir, cfg.model_path(), hf_dir, merge=True, method=cfg.train.method,
                     trust_remote_code=cfg.model.trust_remote_code)
        _convert(hf_dir, out_dir, quantize_to, log)
        chat = load_chat(str(hf_dir))
        template = ollama_template(chat, prompts)
        eos = chat.tokenizer.convert_ids_to_tokens(_eos_ids(hf_dir))
        (out_dir / "Modelfile").write_text(modelfile(template, system, eos), encoding="utf-8")
        if template is None:
            log("warning: the chat template does not translate to an Ollama TEMPLATE; the Modelfile has none")
        result = {"gguf": GGUF_FILE, "quantize": quantize_to, "system_prompt": system,
                  "ollama_template": template is not None}
        if prompts:
            result |= verify(out_dir / GGUF_FILE, hf_dir, prompts, cfg.eval.max_new_tokens, quantize_to)
    finally:
        shutil.rmtree(hf_dir, ignore_errors=True)
    (out_dir / "verify.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result


def _convert(hf_dir: Path, out_dir: Path, quantize_to: str, log) -> None:
    log(f"converting to GGUF ({quantize_to}) with llama.cpp's convert_hf_to_gguf.py")
    if quantize_to != "q4_k_m":
        convert(hf_dir, out_dir / GGUF_FILE, quantize_to, out_dir / "convert.log", log)
        return
    f16 = out_dir / "model-f16.gguf"
    convert(hf_dir, f16, "f16", out_dir / "convert.log", log)
    quantize(f16, out_dir / GGUF_FILE, quantize_to)
    f16.unlink()


def _eos_ids(hf_dir: Path) -> list[int]:
    from transformers import GenerationConfig

    eos = GenerationConfig.from_pretrained(str(hf_dir)).eos_token_id
    return eos if isinstance(eos, list) else [eos]


if __name__ == "__main__":
    _run_converter(sys.argv[1:])
