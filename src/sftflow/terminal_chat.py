"""`sftflow chat RUN`: a conversation with a tuned run in the terminal.

    sftflow chat runs/quickstart --system "Answer with JSON."

Prompts are rendered with the run's chat template and decoded by the engine `serve` uses, so
a greedy answer here is the one the API gives.
"""

from sftflow.errors import SftflowError
from sftflow.model.engine import GenRequest, decode_batch
from sftflow.model.system_prompt import preview
from sftflow.runs import Run, load_run


def chat(run: Run, *, system: str | None, temperature: float, top_p: float, max_tokens: int, seed: int | None,
         threads: int | None, trust_remote_code: bool = False, read=input, write=print) -> None:
    """A conversation in the terminal, rendered with the run's template, answers streamed."""
    from sftflow.model.chat import render

    model, chat = load_run(run, threads=threads, trust_remote_code=trust_remote_code)
    tok = chat.tokenizer
    if system is None and run.system_prompt:
        system = run.system_prompt
        write(f"(system prompt from the training data: {preview(system)}; --system sets another)")
    history: list[dict] = [{"role": "system", "content": system}] if system else []
    write(f"chat with {run.name} ({run.method}); /reset clears the conversation, /exit or ctrl-D quits")
    context = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
    result: dict = {}

    def on_event(kind, payload):
        if kind == "reasoning":  # the <think> block, marked off from the answer
            write(("" if result.get("thinking") else "(thinking) ") + payload, end="", flush=True)
            result["thinking"] = True
        elif kind == "delta":
            if result.pop("thinking", None):
                write("\n(answer) ", end="")
            write(payload, end="", flush=True)
        elif kind == "done":
            result.update(payload)
        else:
            raise SftflowError(f"generation failed: {payload}")

    while True:
        try:
            line = read("you> ")
        except EOFError:
            write("")
            return
        line = line.strip()
        if not line:
            continue
        if line in ("/exit", "/quit"):
            return
        if line == "/reset":
            history = history[:1] if system else []
            write("(conversation cleared)")
            continue
        history.append({"role": "user", "content": line})
        ids = tok(render(chat, history, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
        if len(ids) >= context:
            history.pop()
            write(f"(the conversation is {len(ids)} tokens, over the model's {context}; /reset to start again)")
            continue
        result.clear()
        write(f"{run.name}> ", end="", flush=True)
        req = GenRequest(prompt_ids=ids, max_tokens=min(max_tokens, context - len(ids)), on_event=on_event,
                         temperature=temperature, top_p=top_p, seed=seed, strip=True, reasoning=True)
        decode_batch(model, chat, [req])
        suffix = " [cut at max tokens]" if result.get("finish_reason") == "length" else ""
        write(suffix)
        history.append({"role": "assistant", "content": result.get("text", "")})
