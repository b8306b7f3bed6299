"""The facts of a tokenizer's chat template, in one object built when the tokenizer loads.

    chat = load_chat("Qwen/Qwen3-0.6B")           # model/load.py
    chat.end_of_turn, chat.refuses_system, chat.reasoning_style, chat.call_syntax

Model families differ in how their template ends a turn, whether it takes a system role, the
system prompt it injects by itself, how it takes reasoning and tool calls, and whether it writes
gpt-oss's harmony channels. sftflow finds each by rendering probe conversations (the modules that
know how: `special_tokens.py`, `system_role.py`, `chat.py`, `output.py`, `harmony.py`,
`template_system.py`), once per loaded tokenizer, and keeps the answers here — not as extra
attributes on the tokenizer — so the code that renders, tokenizes, generates and parses replies
is given them as an argument. Each fact is found the first time it is asked for (a template
without tool support never renders a tool probe); a template changed afterwards is an error,
not a fact silently read off the old one.
"""

from __future__ import annotations

from sftflow.errors import SftflowError


class ChatTemplate:
    def __init__(self, tokenizer, added_token_ids: list[int] | tuple[int, ...] = ()):
        self.tokenizer = tokenizer
        self.source = tokenizer.chat_template  # the template these facts are read from
        # chat tokens sftflow added to a base model without a template: untrained rows LoRA must train too
        self.added_token_ids = list(added_token_ids)
        self._facts: dict = {}

    def _fact(self, name: str, find):
        """The fact, found the first time it is asked for; never one read off another template."""
        if self.tokenizer.chat_template != self.source:
            raise SftflowError("the tokenizer's chat template changed after its facts were read; build a new "
                               "ChatTemplate for it")
        if name not in self._facts:
            self._facts[name] = find()
        return self._facts[name]

    @property
    def special_texts(self) -> list[str]:
        """The tokenizer's special tokens as text, longest first."""
        from sftflow.model.special_tokens import special_texts

        return self._fact("special_texts", lambda: special_texts(self.tokenizer))

    @property
    def end_of_turn(self) -> str:
        """The special token the template renders right after a last assistant answer."""
        from sftflow.model.special_tokens import find_end_of_turn

        return self._fact("end_of_turn", lambda: find_end_of_turn(self.tokenizer, self.special_texts))

    @property
    def reply_enders(self) -> list[str]:
        """The tokens that end a reply: after a last answer and after a last tool call."""
        from sftflow.model.special_tokens import find_reply_enders

        return self._fact("reply_enders",
                          lambda: find_reply_enders(self.tokenizer, self.end_of_turn, self.special_texts))

    @property
    def stop_token_ids(self) -> list[int]:
        """Generation stops on the tokens that end a reply and on the tokenizer's eos."""
        return self._fact("stop_token_ids", self._stop_token_ids)

    def _stop_token_ids(self) -> list[int]:
        tok = self.tokenizer
        ids = [tok.convert_tokens_to_ids(t) for t in self.reply_enders]
        if tok.eos_token_id is not None and tok.eos_token_id not in ids:
            ids.append(tok.eos_token_id)
        return ids

    @property
    def refuses_system(self) -> bool:
        """True when the template renders a conversation without a system message but not with one."""
        from sftflow.model.system_role import refuses_system

        return self._fact("refuses_system", lambda: refuses_system(self.tokenizer))

    @property
    def default_system(self) -> str | None:
        """The system prompt the template renders by itself in a conversation without one."""
        from sftflow.model.template_system import template_default_system

        return self._fact("default_system", lambda: template_default_system(self.tokenizer))

    @property
    def reasoning_style(self) -> str:
        """`thinking`, `reasoning_content`, `inline` or `stripped` (chat.reasoning_style)."""
        from sftflow.model.chat import reasoning_style

        return self._fact("reasoning_style", lambda: reasoning_style(self.tokenizer))

    @property
    def tool_support(self) -> str | None:
        """None when the template renders tools and calls; else why not."""
        from sftflow.model.chat import tool_support

        return self._fact("tool_support", lambda: tool_support(self.tokenizer))

    @property
    def call_syntax(self):
        """The family's tool-call syntax (output.CallSyntax), None when the template renders no calls."""
        from sftflow.model.output import derive_call_syntax

        return self._fact("call_syntax", lambda: derive_call_syntax(self))

    @property
    def harmony(self) -> bool:
        """Whether the template writes gpt-oss's harmony channels."""
        from sftflow.model.harmony import is_harmony

        return self._fact("harmony", lambda: is_harmony(self.tokenizer))
