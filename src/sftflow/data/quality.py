"""Rule-based quality score of a chat example: a number in [0, 1] and the reasons behind it.

Cheap signals that catch what ruins SFT data in practice: empty or trivial answers,
repetition loops (words, lines, characters), mojibake and control characters, boilerplate
refusals ("As an AI language model…"), truncated answers (JSON, code, prose), answers that
copy the prompt, placeholder text, HTML debris and markup-only answers, symbol soup and
keyboard mash, answers in another language than the prompt, and personal data (emails,
phone numbers, card numbers: pii.py), which is flagged, redacted or dropped as configured. Each
signal subtracts a penalty; a score below `data.quality.threshold` puts the example in the
`filtered` fate, with its reasons. The score is a triage tool, not a judge: the data card
lists the lowest-scoring examples so a person can check what the rules did.

Every threshold below was set on bench/quality.py (seed 0; seed 1 held out), which measures
recall per junk kind and the share of clean rows filtered: `python bench/quality.py`.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from dataclasses import dataclass, field

from sftflow.data.pii import find_pii

# name → penalty. One serious problem (0.6) drops an example below the default threshold 0.5,
# one mild one (markup_debris 0.3) does not. truncated_answer and repeated_lines were 0.5, which
# left a score of exactly 0.5 and kept the row: the benchmark's truncated JSON all passed.
PENALTIES = {
    "empty_answer": 1.0,
    "trivial_answer": 0.6,  # no letter or digit at all; the benchmark's clean rows always have one
    "markup_only": 1.0,  # tags and entities with no text left once they are removed
    "repetition": 0.6,
    "repeated_lines": 0.6,
    "char_repetition": 0.6,
    "charset_noise": 0.6,
    "refusal_boilerplate": 0.6,
    "truncated_answer": 0.6,
    "answer_copies_prompt": 0.6,
    "placeholder": 0.6,
    "markup_debris": 0.3,
    "markup_heavy": 0.3,  # on top of markup_debris: 0.6 in all
    "gibberish": 0.6,
    "wrong_language": 0.6,
    "pii": 0.0,  # flagged only, unless data.quality.pii is "drop" (penalty 1.0)
}
DETAILS = {  # reason code → what a person reading the data card or ledger should understand
    "empty_answer": "the answer is empty or whitespace",
    "trivial_answer": "the answer has no letter or digit",
    "markup_only": "the answer is HTML tags/entities with no text",
    "repetition": "the answer repeats the same words (a generation loop)",
    "repeated_lines": "the answer repeats the same lines or paragraphs",
    "char_repetition": "the answer is one short run of characters repeated",
    "charset_noise": "mojibake, U+FFFD or control characters",
    "refusal_boilerplate": "a boilerplate refusal or 'as an AI' disclaimer",
    "truncated_answer": "the answer stops mid-sentence, mid-JSON or mid-code",
    "answer_copies_prompt": "the answer copies the prompt",
    "placeholder": "placeholder text (TODO, lorem ipsum, [insert …], N/A)",
    "markup_debris": "HTML tags or entities in the answer",
    "markup_heavy": "more markup than text in the answer",
    "gibberish": "symbol soup, keyboard mash or random characters",
    "wrong_language": "the answer is in another language than the prompt",
    "pii": "personal data (email, phone, card number)",
}

REFUSAL = re.compile(
    r"\b(as an ai(?: language model| assistant)?\b|as a (?:large )?language model|i(?:'m| am) (?:just )?an ai\b|"
    r"i(?: cannot| can't| can not| am unable to|'m unable to| am not able to|'m not able to| won't be able to|"
    r" will not be able to| must decline to| do not have the ability to| don't have the ability to) "
    r"(?:help|assist|provide|comply|fulfil|answer|do that|browse)|"
    r"i(?:'m| am) (?:sorry|afraid),? (?:but )?i (?:cannot|can't|am unable|won't|'m not able|am not able|must decline)|"
    r"i apologi[sz]e,? but i|i must decline|not something i can help with|my knowledge cutoff|"
    r"i (?:do not|don't) have (?:personal )?(?:opinions|feelings|access to real-time))",
    re.IGNORECASE,
)
PLACEHOLDER = re.compile(
    r"(lorem ipsum|\bTODO\b|\bTBD\b|\bFIXME\b|\bPLACEHOLDER\b|[\[<(]\s*(?:insert|your|answer|response)\b[^\]>)]{0,30}[\]>)]|"
    r"\b(?:your answer|answer goes|insert text|your text) here\b|"
    r"^\s*(n/?a|null|undefined|xxx+|\.\.\.|-|\?)\s*$)",
    re.IGNORECASE,
)
MUSTACHE = re.compile(r"\{\{\s*\w+\s*\}\}")  # a template slot left unfilled, unless the prompt asks for a template
HTML_TAG = re.compile(r"</?(div|span|p|br|td|tr|table|li|ul|script|style|font|a|img)\b[^>]*>|&(nbsp|amp|lt|gt|quot|#\d+);",
                      re.IGNORECASE)
ANY_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?/?>|&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);")
# A prompt that asks for markup or templates: tags, entities and {{ }} in the answer are the point.
MARKUP_PROMPT = re.compile(r"\b(?:html|xml|svg|markup|tags?|jsx|(?-i:React|Vue|Angular)|templates?|jinja|css|"
                           r"web ?page|components?|email signature)\b", re.IGNORECASE)
FENCED = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
MOJIBAKE = re.compile("[\ufffd]|Ã[\u0080-\u00bf]|â€|Â[\u00a0-\u00bf]")
# One of these is enough: UTF-8 read as cp1252/Latin-1 ("â€™", "Ã©", "ðŸ", "ï»¿"), U+FFFD, or a C1
# control character; none occurs in any clean benchmark row, and half the mojibake rows hold just one.
MOJIBAKE_STRONG = re.compile("[\ufffd\u0080-\u009f]|Ã[\u0080-\u00bf]|â€|â[\u0080-\u009f]|Â[\u00a0-\u00bf]|ðŸ|ï»¿")
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
WORD = re.compile(r"\w+", re.UNICODE)
ALNUM = re.compile(r"[^\W_]")
SENTENCE_END = re.compile(r"""[.!?…:;)\]}"'`*>\u3002\uff01\uff1f]\s*$|^\S+$""")
ZERO_WIDTH = re.compile("[\u200b-\u200d\u2060\ufeff]")
# A run of one short unit repeated 6+ times ("hahaha…", "!!!!!!", "😊😊😊"); fill characters of tables,
# rules and numbers ("----", "====", "0000") are left out.
CHAR_RUN = re.compile(r"([^\s\-=_*#.~|+0])(?:\1){5,}|(\S{2,4}?)\2{5,}")
# Last words that leave a sentence open ("…the largest planet in the"). Titles ending in one are rare.
OPEN_ENDINGS = frozenset(["the", "a", "an", "and", "or", "but", "of", "to", "in", "on", "at", "by",
                          "for", "with", "from", "that", "which", "who", "whose", "as", "if",
                          "when", "than", "because", "while", "your", "their", "its", "our", "my",
                          "his", "her", "this", "these", "those", "is", "are", "was", "were", "be",
                          "been", "has", "have", "had", "will", "would", "can", "could", "should",
                          "into", "onto", "about", "between", "per", "so", "such", "like", "via",
                          "some", "any", "each", "every", "very", "more", "most", "over", "under",
                          "after", "before", "through", "during", "without", "within", "where",
                          "not", "also", "both", "either", "then", "there", "whether"])
NOISE_CHARS = "#$%&*@!^~`\\<>?;{}[]_"
SENTENCE_BREAK = re.compile(r"\w[.!?]\s+[A-Z]")  # "… days. Your parcel": an earlier sentence ended
# How replies end without a full stop: sign-offs, closing wishes and P.S. lines ('P.S. "thanks", bye',
# 'Best regards,\nSam', 'Hope this helps'); bench/quality.py's `signoff` task measures them.
SIGN_OFF = re.compile(r"(?:p\.?\s?s\b|(?:many )?thanks?\b|thank you|cheers|bye\b|(?:all the )?best\b|(?:kind |warm )?regards|"
                      r"with (?:kind|best) regards|warm(?:est)? wishes|sincerely|yours\b|take care|stay safe|"
                      r"hope (?:this|that|it) helps|let me know|any (?:other|more|further) questions|have (?:a |an )?(?:\w+ )?(?:day|weekend|week|evening|night|time|one|fun)\b|"
                      r"enjoy\b|good luck|(?:talk|speak) soon|see you|until next time|greetings|happy \w+ing\b|xoxo)",
                      re.IGNORECASE)
SENTENCE_GAP = re.compile(r"[.!?…]\s+")
LEADING_MARKS = re.compile(r"^[\W_]+")  # quotes, dashes, emoji before a sign-off's first word
CODE_LINE = re.compile(r"[(){}\[\];=<>/\\$|`]|^\s{2,}")
LIST_LINE = re.compile(r"^\s*(?:[-*•+]|\d+[.)]|\|)")
TRANSLATE = re.compile(r"translat|\b(?:in|into|to) (?:english|french|german|spanish|italian|portuguese|dutch|russian|"
                       r"chinese|japanese|korean)\b|\b(?:french|german|spanish|italian|portuguese|dutch|russian|"
                       r"chinese|japanese|korean|english)\b|language", re.IGNORECASE)
# Function words that occur in one of these languages and in none of the others listed, so two hits
# name a language. Words shared between them (de, la, que, en, in, die/was, …) are left out on purpose.
STOPWORDS = {
    "en": ["the", "and", "is", "are", "of", "to", "that", "it", "with", "for", "what", "how", "you",
           "this", "be", "on", "your", "can", "which", "who", "my", "have", "not", "from", "does",
           "did", "will", "or", "at", "by", "about", "should", "could", "would", "please"],
    "de": ["der", "das", "und", "ist", "nicht", "ich", "sie", "mit", "für", "auf", "ein", "eine",
           "zu", "den", "dem", "wie", "wird", "sind", "auch", "im", "bitte", "werden", "kann",
           "haben", "oder", "wo", "warum", "aber", "sollte", "ihre", "ihr", "finden"],
    "fr": ["le", "les", "et", "est", "une", "des", "du", "pas", "pour", "dans", "vous", "ce",
           "sur", "avec", "au", "aux", "cela", "mais", "nous", "votre", "sont", "où", "pourquoi",
           "comment", "très", "êtes"],
    "es": ["el", "los", "las", "y", "está", "cómo", "qué", "pero", "muy", "hay", "sí", "puedo",
           "dónde", "cuál", "por", "usted", "encontrará"],
    "it": ["di", "che", "è", "sono", "della", "gli", "nel", "anche", "questo", "non", "ho",
           "grazie", "trova"],
    "pt": ["os", "não", "é", "uma", "em", "você", "mais", "são", "seu", "sua", "ao", "das", "dos",
           "obrigado"],
    "nl": ["het", "een", "van", "ik", "niet", "dat", "op", "zijn", "voor", "hoe", "kan",
           "ook", "wat", "naar", "bij"],
}
_SEEN = Counter(w for words in STOPWORDS.values() for w in words)
LANG_OF = {w: lang for lang, words in STOPWORDS.items() for w in words if _SEEN[w] == 1}
NON_ENGLISH = frozenset(w for w, lang in LANG_OF.items() if lang != "en")
ALL_STOPWORDS = frozenset(LANG_OF)
CAMEL = re.compile("[a-z][A-Z]|[A-Z]{2}[a-z]")
SCRIPTS = re.compile("(?P<cyrillic>[\u0400-\u04ff])|(?P<cjk>[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af])|"
                     "(?P<greek>[\u0370-\u03ff])|(?P<arabic>[\u0600-\u06ff])|(?P<hebrew>[\u0590-\u05ff])|"
                     "(?P<devanagari>[\u0900-\u097f])|(?P<thai>[\u0e00-\u0e7f])")
# Neighbouring letters on one row of a QWERTY keyboard: keyboard mash ("asdf jkl zxcv") is mostly these.
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
KEY_NEIGHBOURS = frozenset(r[i:i + 2] for r in _ROWS for i in range(len(r) - 1)) | \
    frozenset(r[i + 1] + r[i] for r in _ROWS for i in range(len(r) - 1))

# Cheap pre-checks: the full patterns run only on the few texts these let through.
REFUSAL_HINTS = ("as an ai", "language model", "i cannot", "i can't", "i can not", "unable to", "sorry",
                 "knowledge cutoff", "i do not have", "i don't have", "i'm an ai", "i am an ai", "i am just an ai",
                 "i'm just an ai", "afraid", "decline", "not able to", "won't be able", "will not be able",
                 "apologi", "not something i can")
PLACEHOLDER_HINTS = ("lorem", "todo", "tbd", "fixme", "placeholder", "insert", "your answer", "your text",
                     "answer goes", "[answer", "<answer", "(answer", "[response", "<response", "[your", "<your",
                     "xxx")
# Substrings that must occur before the case-insensitive prompt patterns are worth running.
MARKUP_HINTS = ("html", "xml", "svg", "markup", "tag", "jsx", "react", "vue", "angular", "template", "jinja",
                "css", "web", "component", "signature")
TRANSLATE_HINTS = ("translat", "english", "french", "german", "spanish", "italian", "portuguese", "dutch",
                   "russian", "chinese", "japanese", "korean", "language")


@dataclass
class Quality:
    score: float
    reasons: list[str] = field(default_factory=list)
    pii: list[str] = field(default_factory=list)  # kinds found: email, phone, card

    def as_dict(self) -> dict:
        return {"score": round(self.score, 3), "reasons": self.reasons}


def _repetition(words: list[str]) -> float:
    """Share of word trigrams that repeat an earlier trigram (0 for short answers)."""
    if len(words) < 12:
        return 0.0
    grams = list(zip(words, words[1:], words[2:], strict=False))
    return 1.0 - len(set(grams)) / len(grams)


def _tail_loop(words: list[str]) -> bool:
    """A trigram 4+ times in the last 40 words: a loop a long answer fell into (max_tokens cuts it there).
    No clean benchmark answer repeats a trigram 4 times anywhere; the whole-answer share misses a loop
    that is under a third of a long answer."""
    tail = words[-40:]
    if len(set(tail[-5:])) == 1:  # "… a commit. parents. parents. parents. parents. parents."
        return True
    counts = Counter(zip(tail, tail[1:], tail[2:], strict=False))
    return counts.most_common(1)[0][1] >= 4


def _loops(stripped: str, words: list[str]) -> list[str]:
    """Generation loops at three scales: words, lines, characters."""
    reasons = []
    n = len(words)
    # Under 12 words the trigram share says nothing; a short answer whose words are at most a third
    # distinct is a loop ("refund" x10, "thank you" x3). The benchmark's clean answers of 4-29 words
    # are all 0.45 distinct or more (seeds 0 and 1).
    if _repetition(words) > 0.3 or 4 <= n < 30 and 3 * len(set(words)) <= n or n >= 8 and _tail_loop(words):
        reasons.append("repetition")
    if "\n" in stripped:
        lines = [ln.strip() for ln in stripped.splitlines() if ALNUM.search(ln)]
        # The same line 3+ times, or 3+ lines of which at most half are distinct ("Lima\n\nLima\n\nLima").
        if lines and (Counter(ln for ln in lines if len(ln) > 10).most_common(1) or [("", 0)])[0][1] >= 3 \
                or len(lines) >= 3 and 2 * len(set(lines)) <= len(lines):
            reasons.append("repeated_lines")
    if not reasons and n < 4:  # "hahahaha", "!!!!!!!!", "😊😊😊😊😊😊" are one word or none
        run = sum(len(m.group()) for m in CHAR_RUN.finditer(stripped)
                  if not set(m.group(1) or m.group(2)) <= set("-=_*#.~|+0 "))
        if run * 2 >= len(stripped):
            reasons.append("char_repetition")
    return reasons


def _open_code(text: str) -> bool:
    """The last fenced block (or the whole answer) opens more brackets than it closes."""
    block = text.rsplit("```", 2)[-2] if text.endswith("```") and text.count("```") >= 2 else text
    return sum(block.count(c) for c in "([{") > sum(block.count(c) for c in ")]}")


def _looks_truncated(answer: str) -> bool:
    text = answer.rstrip()
    if text.endswith(("...", "…")) and len(text) > 40:
        return True
    if text.count("```") % 2 == 1:
        return True
    stripped = text.lstrip()
    if stripped[:1] in "{[":
        opens = sum(stripped.count(c) for c in "{[")
        closes = sum(stripped.count(c) for c in "}]")
        return opens > closes
    if text.endswith("```"):
        return _open_code(text)
    raw_last = text[text.rfind("\n") + 1:]
    last = raw_last.strip()
    if text.endswith(":") and (" " in text or "\n" in text):
        return True  # "Here are the steps:" and nothing after, or a code block cut after "if x:"
    if last.count('"') % 2 == 1 or last.rfind("<") > last.rfind(">"):
        return True  # a string or a tag left open: 'grep -n "ERR', '<label>Password</labe'
    if CODE_LINE.search(raw_last) and not LIST_LINE.match(last):
        return _open_code(text)  # a line of code: truncated when a bracket is left open
    # A list item or table row ends without a full stop legitimately; so do answers ending in a
    # closing mark, emoji or symbol, and a sign-off ("Best regards,\nSam").
    if LIST_LINE.match(last) or not (last[-1:].isalnum() or last.endswith(",")) or \
            last.count(" ") < 3 and text[: len(text) - len(last)].rstrip().endswith(","):
        return False
    last_word = last.rsplit(None, 1)[-1]
    if last_word.lower() not in OPEN_ENDINGS and _signs_off(text, last):
        return False
    n = text.count(" ") + text.count("\n") + 1
    if last.endswith(",") and n >= 3 or n >= 5 and (last_word in OPEN_ENDINGS or len(last_word) == 1 and
                                                    last_word.islower() and last_word not in "ai"):
        return True
    # Long prose that stops mid-sentence, or a later sentence that never ends after earlier ones did
    # (short answers and labels legitimately lack a full stop).
    return len(text) > 200 or last.count(" ") >= 2 and SENTENCE_BREAK.search(text) is not None


def _signs_off(text: str, last: str) -> bool:
    """The answer ends in a sign-off: its last line or sentence is one ('Thanks, bye', 'P.S. the manual is
    online'), or a short line under one ('Regards\nThe Lyon store team')."""
    tail = LEADING_MARKS.sub("", SENTENCE_GAP.split(last)[-1])
    if last.count(" ") < 8 and SIGN_OFF.match(LEADING_MARKS.sub("", last)) or tail.count(" ") < 12 and SIGN_OFF.match(tail):
        return True
    lines = text.rsplit("\n", 2)
    return len(lines) > 1 and last.count(" ") < 4 and SIGN_OFF.match(lines[-2].strip()) is not None


def _cut_quote(answer: str, prompt: str) -> bool:
    """A quote from the prompt that stops where the prompt's sentence goes on ("… started young" of
    "… started young often beat larger savings")."""
    if answer.count(" ") < 3 or not answer[-1:].isalnum():  # 4+ words: "San Francisco" of "San Francisco or LA?" is fine
        return False
    at = prompt.find(answer)
    after = prompt[at + len(answer): at + len(answer) + 2] if at >= 0 else ""
    return after[:1].isalnum() or after[:1] == " " and after[1:2].isalnum()


def _copies_prompt(words: list[str], low_prompt: str) -> bool:
    """The answer is the prompt, or at least half of it, verbatim (case and punctuation aside)."""
    if words and words[0] in ("q", "question", "prompt", "input", "user"):
        words = words[1:]  # "Q: <the prompt>"
    norm_a = " ".join(words)
    if len(norm_a) < 10 or words[0] not in low_prompt or words[-1] not in low_prompt:
        return False  # most answers share neither their first nor their last word with the prompt
    norm_p = " ".join(WORD.findall(low_prompt))
    # Half the prompt: quoting one sentence of a passage (the benchmark's extractive task, at most
    # 43% of its prompt) is an answer; echoing the whole input part of a prompt is not (the
    # benchmark's prompt copies cover 45% or more).
    return norm_a in norm_p and 2 * len(norm_a) >= len(norm_p)


def _script(text: str) -> str:
    """The writing system most of the non-ASCII letters are in, or 'latin'."""
    if text.isascii():
        return "latin"
    counts = Counter(m.lastgroup for m in SCRIPTS.finditer(text))
    top = counts.most_common(1)
    return top[0][0] if top and top[0][1] * 3 >= len(text) - text.count(" ") else "latin"


def _language(words: list[str], strict: bool = True) -> str | None:
    """en/de/fr/es/it/pt/nl from language-unique function words: two hits, twice the runner-up's.
    Not strict: one hit of one language and none of English is enough (an answer is judged against
    an English prompt this way: "Dipende da diversi fattori, ma in generale è meglio…" has one)."""
    counts = Counter(LANG_OF[w] for w in words[:200] if w in LANG_OF).most_common(2)
    if not counts:
        return None
    if not strict and len(words) >= 5 and "en" not in dict(counts):
        return counts[0][0]
    if counts[0][1] < 2 or len(counts) > 1 and counts[0][1] < 2 * counts[1][1]:
        return None
    return counts[0][0]


def a_script_is_latin(text: str, prompt: str) -> bool:
    return _script(text) == "latin" and _script(prompt) == "latin"


def _wrong_language(text: str, words: list[str], prompt: str, system: str) -> bool:
    """The answer is written in another script or language than the prompt (translations aside)."""
    if NON_ENGLISH.isdisjoint(words) and a_script_is_latin(text, prompt):
        return False  # no function word of another language, one script: the common case, decided fast
    if _asks(prompt, TRANSLATE_HINTS, TRANSLATE) or _asks(system, TRANSLATE_HINTS, TRANSLATE):
        return False
    a_script, p_script = _script(text), _script(prompt)
    if a_script != p_script:
        return len(text) >= 6 and len(prompt) >= 6
    if a_script != "latin":
        return False
    a_lang = _language(words, strict=False)
    if a_lang is None:
        return False
    p_lang = _language([w.lower() for w in WORD.findall(prompt)]) or \
        _language([w.lower() for w in WORD.findall(system)])
    return p_lang is not None and p_lang != a_lang and (p_lang == "en" or _language(words) is not None)


def _asks(text: str, hints: tuple[str, ...], pattern: re.Pattern) -> bool:
    """The prompt asks for something (markup, a translation): substring tests first (a case-insensitive
    alternation over every prompt cost more than the rest of the scorer), the regex after."""
    low = text.lower()
    for h in hints:
        if h in low:
            return pattern.search(text) is not None
    return False


def _gibberish(text: str, words: list[str]) -> bool:
    """Symbol soup, keyboard mash or random alphanumerics: no word a reader would recognise."""
    chars = len(text) - text.count(" ") - text.count("\n")
    if chars < 6:
        return False
    letters = len("".join(words))  # letters, digits and "_": as good as exact for this
    # More symbols than letters and digits, and most of them noise rather than the pipes of a table or
    # the operators of a formula ("x = (−b ± √(b² − 4ac)) / 2a" is 40% letters, 0% noise).
    if letters * 2 < chars and sum(text.count(c) for c in NOISE_CHARS) * 5 >= 2 * chars:
        return True
    tokens = text.split()
    # Only short answers with no function word of any language and no sentence end are looked at.
    if len(tokens) < 2 or len(text) > 300 or text[-1:] in ".!?" or text[:1] in "{[|" or \
            not ALL_STOPWORDS.isdisjoint(words):
        return False
    odd = 0
    for tok in tokens:
        low = tok.lower()
        mixed = len(tok) >= 4 and any(c.isdigit() for c in tok) and any(c.isalpha() for c in tok)
        camel = len(tok) >= 5 and CAMEL.search(tok) is not None
        keyboard = len(low) >= 3 and low.isascii() and low.isalpha() and (
            not any(v in low for v in "aeiouy") or
            sum(low[i:i + 2] in KEY_NEIGHBOURS for i in range(len(low) - 1)) * 4 >= 3 * (len(low) - 1))
        odd += mixed or camel or keyboard
    # Half the tokens odd: the benchmark's clean short answers that get here (names, units, raw code)
    # are at most a tenth odd.
    return odd * 2 >= len(tokens)


def _markup(stripped: str, prompt_wants_markup: bool) -> tuple[str, list[str]]:
    """(the answer's text outside fenced code and markup, markup reasons)."""
    prose = FENCED.sub(" ", stripped) if "```" in stripped else stripped
    if prompt_wants_markup or ("<" not in prose and "&" not in prose):
        return prose, []
    markup = sum(len(m.group()) for m in ANY_TAG.finditer(prose))
    if not markup:
        return prose, []
    text = ANY_TAG.sub(" ", html.unescape(prose) if "&" in prose else prose)  # "&lt;br&gt;" is a tag too
    if not ALNUM.search(text):
        return text, ["markup_only"]
    tags = len(ANY_TAG.findall(prose))
    # Markup over 40% of the non-space characters, in 2+ tags: the benchmark's markup-heavy junk is
    # 43-100%, its clean answers 0% (markup prompts and code aside), one wrapping <div> plus two <br>
    # around a clean sentence (tests/data/test_quality.py) under 20%.
    heavy = tags >= 2 and markup * 5 >= 2 * (len(prose) - prose.count(" "))
    reasons = ["markup_debris"] if heavy or len(HTML_TAG.findall(prose)) >= 3 else []
    return text, reasons + ["markup_heavy"] * heavy


def _answer_reasons(answer: str, answers: list[str], prompt: str, system: str) -> list[str]:
    stripped = ZERO_WIDTH.sub("", answer).strip() if not answer.isascii() else answer.strip()
    if not stripped:
        return ["empty_answer"]
    if not ALNUM.search(stripped):
        return ["trivial_answer"] + (["placeholder"] if PLACEHOLDER.search(stripped) else [])
    wants_markup = _asks(prompt, MARKUP_HINTS, MARKUP_PROMPT) or _asks(system, MARKUP_HINTS, MARKUP_PROMPT)
    text, reasons = _markup(stripped, wants_markup)
    if "markup_only" in reasons:
        return reasons
    words = [w.lower() for w in WORD.findall(text)]
    reasons += _loops(stripped, words)
    low = text.lower()
    if any(h in low for h in REFUSAL_HINTS) and REFUSAL.search(text):
        reasons.append("refusal_boilerplate")
    if any(_looks_truncated(a) for a in answers) or _cut_quote(stripped, prompt):
        reasons.append("truncated_answer")
    if _copies_prompt(words, prompt.lower()):
        reasons.append("answer_copies_prompt")
    if (len(text) <= 10 or any(h in low for h in PLACEHOLDER_HINTS)) and PLACEHOLDER.search(text) or \
            not wants_markup and "{{" in text and MUSTACHE.search(text):
        reasons.append("placeholder")
    if "```" not in stripped and not wants_markup and _gibberish(text, words):
        reasons.append("gibberish")
    if _wrong_language(text, words, prompt, system):
        reasons.append("wrong_language")
    return reasons


def _charset_noise(text: str) -> bool:
    if text.isascii():
        noise = len(CONTROL.findall(text))
    elif MOJIBAKE_STRONG.search(text):
        return True
    else:
        noise = len(CONTROL.findall(text))
    return noise >= 5 or bool(text) and noise / len(text) > 0.01


def score_messages(messages: list[dict], pii_mode: str = "flag") -> Quality:
    """Score a canonical chat (system/user/assistant messages). Looks mostly at assistant turns."""
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    prompt = "\n".join(m["content"] for m in messages if m["role"] == "user")
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    answer = "\n".join(answers)
    reasons = _answer_reasons(answer, answers, prompt, system)
    if _charset_noise(answer + prompt):
        reasons.insert(1 if reasons[:1] == ["empty_answer"] else len(reasons), "charset_noise")
    pii = sorted({kind for m in messages for kind, _, _ in find_pii(m["content"])})
    if pii:
        reasons.append("pii")
    penalty = sum(PENALTIES[r] for r in reasons)
    if pii and pii_mode == "drop":
        penalty += 1.0
    return Quality(score=max(0.0, 1.0 - penalty), reasons=reasons, pii=pii)


def score_text(text: str, pii_mode: str = "flag") -> Quality:
    """Plain-text (continued pre-training) rows: the same signals that apply without turns."""
    return score_messages([{"role": "assistant", "content": text}], pii_mode)
