"""Code answers for bench/quality.py: (prompt, language, code) builders with varied names.

Markup-bearing legit answers live here too (HTML, JSX, templates): the quality rules must leave them alone.
"""

from __future__ import annotations

import random


def _name(rng: random.Random, *options: str) -> str:
    return rng.choice(options)


def python_snippets(rng: random.Random) -> list[tuple[str, str, str]]:
    f, xs = _name(rng, "average", "mean", "avg", "mean_of"), _name(rng, "values", "numbers", "xs", "items")
    w = _name(rng, "text", "s", "sentence", "line")
    return [
        (f"Write a Python function `{f}` that returns the mean of a list, or 0.0 for an empty list.", "python",
         f"def {f}({xs}):\n    if not {xs}:\n        return 0.0\n    return sum({xs}) / len({xs})"),
        (f"How do I check in Python whether a string `{w}` is a palindrome, ignoring case and spaces?", "python",
         f"def is_palindrome({w}: str) -> bool:\n    cleaned = \"\".join(ch.lower() for ch in {w} if ch.isalnum())\n"
         f"    return cleaned == cleaned[::-1]"),
        (f"Count how often each word occurs in `{w}` using the standard library.", "python",
         f"from collections import Counter\n\ncounts = Counter({w}.lower().split())\n"
         f"for word, n in counts.most_common(5):\n    print(word, n)"),
        ("Read a JSON file in Python and print one of its keys.", "python",
         f"import json\n\nwith open(\"{_name(rng, 'config', 'settings', 'data')}.json\", encoding=\"utf-8\") as f:\n"
         f"    data = json.load(f)\nprint(data[\"{_name(rng, 'name', 'version', 'port')}\"])"),
        (f"Give me a generator for the first n Fibonacci numbers called `{_name(rng, 'fib', 'fibonacci')}`.",
         "python", f"def {_name(rng, 'fib', 'fibonacci')}(n):\n    a, b = 0, 1\n    for _ in range(n):\n"
         f"        yield a\n        a, b = b, a + b"),
        ("Flatten a list of lists in Python.", "python",
         "nested = [[1, 2], [3], [4, 5, 6]]\nflat = [x for sub in nested for x in sub]\nprint(flat)  # [1, 2, 3, 4, 5, 6]"),
        (f"Convert Celsius to Fahrenheit in Python ({_name(rng, 'one-liner', 'small function')}).", "python",
         "def c_to_f(celsius: float) -> float:\n    return celsius * 9 / 5 + 32"),
        ("Remove duplicates from a list but keep the original order.", "python",
         f"def unique({xs}):\n    seen = set()\n    return [x for x in {xs} if not (x in seen or seen.add(x))]"),
        ("Parse the date string '2024-03-15' into a date object.", "python",
         "from datetime import date\n\nd = date.fromisoformat(\"2024-03-15\")\nprint(d.year, d.month, d.day)"),
    ]


def other_snippets(rng: random.Random) -> list[tuple[str, str, str]]:
    table = _name(rng, "orders", "customers", "invoices", "tickets")
    col = _name(rng, "country", "status", "city", "plan")
    title = _name(rng, "Wireless Headphones", "Trail Shoes", "Desk Lamp", "Travel Mug")
    comp = _name(rng, "ProductCard", "TodoList", "UserBadge", "PriceTag")
    return [
        (f"SQL: how many rows per {col} are in the {table} table, largest first?", "sql",
         f"SELECT {col}, COUNT(*) AS n\nFROM {table}\nGROUP BY {col}\nORDER BY n DESC;"),
        (f"Write a SQL query that lists {table} created in the last 7 days.", "sql",
         f"SELECT *\nFROM {table}\nWHERE created_at >= CURRENT_DATE - INTERVAL '7 days';"),
        ("Write a debounce helper in JavaScript.", "javascript",
         "function debounce(fn, ms) {\n  let timer;\n  return (...args) => {\n    clearTimeout(timer);\n"
         "    timer = setTimeout(() => fn(...args), ms);\n  };\n}"),
        ("Fetch JSON from an API in JavaScript with async/await.", "javascript",
         f"async function load() {{\n  const res = await fetch(\"/api/{table}\");\n"
         f"  if (!res.ok) throw new Error(`HTTP ${{res.status}}`);\n  return res.json();\n}}"),
        (f"Write the HTML for a simple product card for \"{title}\".", "html",
         f"<div class=\"card\">\n  <img src=\"product.jpg\" alt=\"{title}\">\n  <h2>{title}</h2>\n"
         f"  <p class=\"price\">$49.00</p>\n  <button type=\"button\">Add to cart</button>\n</div>"),
        ("Make an HTML login form with email and password fields.", "html",
         "<form method=\"post\" action=\"/login\">\n  <label for=\"email\">Email</label>\n"
         "  <input id=\"email\" type=\"email\" name=\"email\" required>\n  <label for=\"pw\">Password</label>\n"
         "  <input id=\"pw\" type=\"password\" name=\"password\" required>\n  <button>Sign in</button>\n</form>"),
        (f"Write a React component `{comp}` that renders a list of items.", "jsx",
         f"export function {comp}({{ items }}) {{\n  return (\n    <div className=\"list\">\n      <ul>\n"
         f"        {{items.map((item) => (\n          <li key={{item.id}}>{{item.name}}</li>\n        ))}}\n"
         f"      </ul>\n    </div>\n  );\n}}"),
        ("How do I center a div horizontally and vertically with CSS?", "html",
         "<style>\n  .wrap { display: flex; justify-content: center; align-items: center; height: 100vh; }\n"
         "</style>\n<div class=\"wrap\">\n  <div>Centered</div>\n</div>"),
        ("Write a Jinja template that greets the user by name.", "html",
         "<p>Hello, {{ user.name }}!</p>\n{% if user.is_admin %}\n  <p><a href=\"/admin\">Admin panel</a></p>\n"
         "{% endif %}"),
        ("Find all files larger than 100 MB under the current folder (bash).", "bash",
         "find . -type f -size +100M -exec ls -lh {} \\;"),
        (f"Create a compressed archive of the `{_name(rng, 'logs', 'data', 'backup')}` folder.", "bash",
         f"tar -czf archive.tar.gz {_name(rng, 'logs', 'data', 'backup')}/"),
        ("Show the lines containing ERROR in app.log, with line numbers.", "bash", "grep -n \"ERROR\" app.log"),
    ]


def code_answer(rng: random.Random) -> tuple[str, str, str]:
    """(prompt, answer, language): fenced most of the time, sometimes raw, sometimes with a sentence around it."""
    pool = python_snippets(rng) + other_snippets(rng)
    prompt, lang, code = rng.choice(pool)
    # Raw code one time in five: HTML answers without a fence must still pass.
    body = f"```{lang}\n{code}\n```" if rng.random() < 0.8 else code
    r = rng.random()
    if r < 0.3:
        body = rng.choice(["Here's one way to do it:", "You can do it like this:", "Sure:", "For example:"]) + \
            "\n\n" + body
    elif r < 0.5:
        body += "\n\n" + rng.choice(["This runs in linear time.", "Adjust the names to your project.",
                                     "It works on any recent version.", "Test it with a small example first."])
    return prompt, body, lang
