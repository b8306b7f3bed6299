"""A small tool-calling task, end to end on the tiny offline model: data → train → eval → serve.

    python examples/tool_calling/make_data.py examples/tool_calling/raw     # raw/tools_chat.jsonl
    sftflow init tiny-model --model-only ... (or copy a tiny-model folder next to sftflow.yaml)
    sftflow run examples/tool_calling/sftflow.yaml

OpenAI chat rows with `tools`: three tools (weather, a calculator, order lookup). Half the rows are
a request that needs a tool, answered by the call alone; a fifth carry the tool's result and are
answered from it in words; the rest need no tool (greetings, thanks, what the assistant can do)
and are answered without calling. Arguments are copied from the request (a city, an expression,
an order number) and a unit is added only when the user asks for Fahrenheit, so a model must read
the request to get them right, and must tell requests that need a tool from those that do not.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                        "unit": {"type": "string", "enum": ["C", "F"]}},
                       "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "calculate", "description": "Evaluate an arithmetic expression",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                       "required": ["expression"]}}},
    {"type": "function", "function": {
        "name": "get_order", "description": "Status of an order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                       "required": ["order_id"]}}},
]
SYSTEM = "You are a helpful assistant. Call a tool when the request needs one."
CITIES = ["Paris", "Lima", "Oslo", "Cairo", "Quito", "Hanoi", "Perth", "Dakar", "Riga", "Baku", "Lagos", "Turin",
          "Osaka", "Porto", "Minsk", "Delhi", "Accra", "Sofia", "Tunis", "Bern", "Rome", "Kyiv", "Doha", "Nice"]
WEATHER = ["What's the weather in {city}?", "How is the weather in {city} today?", "Is it raining in {city}?",
           "weather {city}", "Tell me the weather for {city} please.", "Do I need a coat in {city} today?",
           "What's it like outside in {city} right now?", "Current weather in {city}?"]
WEATHER_F = ["What's the weather in {city} in Fahrenheit?", "Temperature in {city}, in F please.",
             "How warm is it in {city}? Fahrenheit please."]
MATH = ["What is {e}?", "Calculate {e}.", "How much is {e}?", "Can you work out {e} for me?", "{e} = ?",
        "Please compute {e}."]
ORDER = ["Where is my order {o}?", "What's the status of order {o}?", "Has order {o} shipped yet?",
         "Track order {o} please.", "Any news on my order {o}?", "order {o} status?"]
NAMES = ["Anna", "Ben", "Carla", "Dev", "Elif", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Luca", "Mona",
         "Nils", "Omar", "Pia", "Quinn", "Rosa", "Sam", "Tara"]
GREETINGS = ["Hello", "Hi", "Hey", "Good morning", "Good evening", "Hi there"]
THANKS = ["Thanks", "Thank you", "Thanks a lot", "Many thanks", "thx", "Thank you so much"]
THANKS_TAILS = ["", " for the help", ", that helps", ", great", " again", ", that was quick"]
CAN_DO = ["What can you do?", "How can you help me?", "What are you able to do?", "What do you help with?",
          "Which things can you do for me?", "What are your skills?"]
BYES = ["Bye", "Goodbye", "See you later", "Have a good day", "That's all, bye", "Talk soon"]
LEADS = ["", "Hey, ", "Quick question: ", "So, ", "Ok. "]
CAN_DO_ANSWER = "I can check the weather, do arithmetic and look up orders."
CONDITIONS = ["sunny", "cloudy", "rainy", "windy", "snowy"]


def _expression(rng: random.Random) -> tuple[str, int]:
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    op = rng.choice(["+", "-", "*"])
    return f"{a} {op} {b}", {"+": a + b, "-": a - b, "*": a * b}[op]


def _order_id(rng: random.Random) -> str:
    return rng.choice("ABCDEFGH") + str(rng.randint(1000, 9999))


def _chat(rng: random.Random) -> tuple[str, str]:
    """A request that needs no tool, and its answer (a greeting answers with the name given)."""
    name = rng.choice(NAMES)
    what = rng.choice(["greet", "thanks", "can_do", "bye"])
    if what == "greet":
        if rng.random() < 0.6:
            return f"{rng.choice(GREETINGS)}, I'm {name}{rng.choice(['!', '.', ''])}", f"Hello {name}! How can I help you today?"
        return f"{rng.choice(GREETINGS)}{rng.choice(['!', '.', ''])}", "Hello! How can I help you today?"
    if what == "thanks":
        return f"{rng.choice(THANKS)}{rng.choice(THANKS_TAILS)}{rng.choice(['!', '.', ''])}", "You're welcome!"
    if what == "can_do":
        return rng.choice(LEADS) + rng.choice(CAN_DO), CAN_DO_ANSWER
    return f"{rng.choice(BYES)}{rng.choice(['', ', ' + name])}{rng.choice(['!', '.', ''])}", "Goodbye! Have a nice day."


def _call(name: str, args: dict, i: int) -> dict:
    return {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


def row(rng: random.Random, i: int) -> dict:
    """One conversation; its last assistant turn is what is trained and evaluated."""
    kind = rng.random()
    tool = rng.choice(["get_weather", "calculate", "get_order"])
    if tool == "get_weather":
        city = rng.choice(CITIES)
        fahrenheit = rng.random() < 0.25
        ask = rng.choice(WEATHER_F if fahrenheit else WEATHER).format(city=city)
        args = {"city": city, **({"unit": "F"} if fahrenheit else {})}
        temp = rng.randint(40, 90) if fahrenheit else rng.randint(-5, 32)
        result = {"temperature": temp, "unit": "F" if fahrenheit else "C", "condition": rng.choice(CONDITIONS)}
        answer = f"It is {temp} degrees {result['unit']} and {result['condition']} in {city}."
    elif tool == "calculate":
        expression, value = _expression(rng)
        ask, args = rng.choice(MATH).format(e=expression), {"expression": expression}
        result, answer = {"result": value}, f"{expression} = {value}."
    else:
        order = _order_id(rng)
        ask, args = rng.choice(ORDER).format(o=order), {"order_id": order}
        status = rng.choice(["shipped", "processing", "delivered"])
        result, answer = {"order_id": order, "status": status}, f"Order {order} is {status}."
    messages = [{"role": "system", "content": SYSTEM}]
    if kind < 0.3:  # no tool needed
        ask, reply = _chat(rng)
        messages += [{"role": "user", "content": ask}, {"role": "assistant", "content": reply}]
    elif kind < 0.5:  # the tool's result is back: answer from it
        call = _call(tool, args, i)
        messages += [{"role": "user", "content": ask}, {"role": "assistant", "content": "", "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)},
                     {"role": "assistant", "content": answer}]
    else:  # the call
        messages += [{"role": "user", "content": ask},
                     {"role": "assistant", "content": "", "tool_calls": [_call(tool, args, i)]}]
    return {"tools": TOOLS, "messages": messages}


def write_data(out_dir: Path, n: int = 2000, seed: int = 0) -> Path:
    rng = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "tools_chat.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps(row(rng, i)) + "\n")
    return path


if __name__ == "__main__":
    print(write_data(Path(sys.argv[1] if len(sys.argv) > 1 else "raw"), int(sys.argv[2]) if len(sys.argv) > 2 else 2000))
