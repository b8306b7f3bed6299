"""How prepare checks every row, from the config: the row settings the workers get, the tokenizer
that measures token lengths (or why there is none), what the data card says of the model's chat
template, and the decontamination benchmark's index."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from sftflow.config import Config
from sftflow.data.decide.dedup import dedup_texts
from sftflow.data.decide.split import NgramIndex
from sftflow.data.read import iter_sources
from sftflow.data.signals.rows import RowProcessor, RowSettings
from sftflow.errors import SftflowWarning
from sftflow.model.resolve import Unreachable, locate_model


@dataclass
class RowSetup:
    """The settings and processor every row goes through, and the template facts the data card names."""

    settings: RowSettings
    processor: RowProcessor  # its tokenizer already loaded, when there is a model to measure with
    length_check: str  # how token lengths are checked, or why they are not
    template_date: str | None
    template_default_system: str | None

    @classmethod
    def of(cls, cfg: Config, log) -> RowSetup:
        settings, length_check, probe = _settings(cfg, log)
        template_default = _template_default(probe)
        processor = probe or RowProcessor(settings)
        return cls(settings, processor, length_check, _template_date(processor), template_default)


def _settings(cfg: Config, log) -> tuple[RowSettings, str, RowProcessor | None]:
    """Row settings, how token lengths are checked (or why they are not), and a processor whose
    tokenizer is already loaded (None when there is no tokenizer)."""
    d = cfg.data
    s = RowSettings(
        system_prompt=d.system_prompt, allow_text=d.allow_text, group_field=d.group_field,
        stratify_field=d.stratify_field, quality=d.quality.enabled, threshold=d.quality.threshold,
        pii=d.quality.pii, max_tokens=d.max_tokens or cfg.train.max_length, truncate=d.truncate,
        chat_template=str(cfg.path(cfg.model.chat_template)) if cfg.model.chat_template else None,
        trust_remote_code=cfg.model.trust_remote_code, num_perm=d.dedup.num_perm, ngram=d.dedup.ngram,
        template_date=cfg.model.template_date,
    )
    try:
        model_path = cfg.model_path()  # a .gguf or offline short name: converted here, once
        locate_model(model_path, cfg.model.revision)  # a wrong id, a gated repo, no login: one line, now
    except Unreachable as err:  # offline and not cached (nor fetchable): prepare can do without the model
        length_check = (f"token lengths NOT checked: {err}; train will truncate over-long examples")
        warnings.warn(length_check, SftflowWarning, stacklevel=2)
        probe = None
    else:
        probe = RowProcessor(RowSettings(model_path=model_path, chat_template=s.chat_template,
                                         trust_remote_code=s.trust_remote_code, template_date=s.template_date))
        _ = probe.tokenizer  # loads it, or fails here with a clear message
        s.model_path = model_path
        probe.s = s
        length_check = f"token lengths measured with {cfg.model.name_or_path}'s tokenizer, limit {s.max_tokens}"
        from sftflow.model.system_role import FOLD_NOTE

        if probe.tokenizer.chat_template and probe.chat.refuses_system:
            log(f"prepare: {FOLD_NOTE}")
    if d.decontaminate:
        s.benchmark, s.benchmark_prompts = _benchmark_index(cfg)
    return s, length_check, probe


def _template_date(processor: RowProcessor | None) -> str | None:
    """The fixed date the chat template renders for today's (model.template_date), None where it writes none."""
    from sftflow.model.template import pinned_date

    tok = processor.tokenizer if processor is not None else None
    return pinned_date(tok.chat_template) if tok is not None else None


def _template_default(processor) -> str | None:
    """The system prompt the model's template renders for rows without one (None: it renders none,
    or no tokenizer was loaded); the data card names it."""
    if processor is None:
        return None
    return processor.chat.default_system if processor.chat is not None else None


def _benchmark_index(cfg: Config) -> tuple[NgramIndex, frozenset]:
    from sftflow.data.decide.dedup import prompt_key
    from sftflow.errors import RowError
    from sftflow.formats import convert_row

    texts, prompts = [], set()
    for i, pattern in enumerate(cfg.data.decontaminate):
        for source in iter_sources(pattern, cfg.root, f"data.decontaminate[{i}]"):
            for raw in source.rows():
                if raw.error is not None:
                    continue
                try:
                    _, record = convert_row(raw.row, "auto", allow_text=True)
                except RowError:
                    continue
                texts.append(dedup_texts(record)[0])
                prompts.add(prompt_key(record))
    return NgramIndex(texts), frozenset(prompts)
