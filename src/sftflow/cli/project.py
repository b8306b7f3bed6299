"""`sftflow init`: a new project (the quickstart, a ready real-model project, or one for your data).

    sftflow init my-project --model Qwen/Qwen2.5-0.5B-Instruct --data questions.csv
"""

from __future__ import annotations

from pathlib import Path

import typer

from sftflow.cli.app import command, log, show_rendered, user_errors
from sftflow.errors import SftflowError


@command()
def init(
    directory: Path = typer.Argument(..., metavar="DIR", help="folder for the new project (or the model, with "
                                     "--tiny-model)", show_default=False),
    model: str = typer.Option(None, "--model", help="the model to fine-tune: a hub id, a local folder or .gguf file "
                              "(without --data: smollm2-135m-instruct's ready project)"),
    data: list[Path] = typer.Option(None, "--data", help="your training data (JSONL, JSON, CSV/TSV, Parquet); repeat "
                                    "for several files"),
    mix_general: bool = typer.Option(False, "--mix-general", help="with --data: mix general conversations into "
                                     "training against forgetting (10% of train)"),
    tiny_model: bool = typer.Option(False, "--tiny-model", help="only build the tiny offline base model into DIR"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing sftflow.yaml (and the data init writes)"),
    examples: int = typer.Option(2000, "--examples", min=50, help="quickstart examples to generate"),
):
    """Create a project: for your data and model, the quickstart, a real-model project, or the tiny base model.

    With --model and --data: reads each file as prepare will (its format, and the column mapping
    when its columns name no format), shows the first example as the model's chat template renders
    it with the trained tokens marked, and writes a config for that model and data: LoRA with a
    learning rate for the model's size, train.max_length from the examples' real token lengths,
    eval metrics that suit the answers (JSON metrics only for JSON answers), nothing else mixed in
    (--mix-general: general conversations against forgetting).

    Without --model: the quickstart. sftflow.yaml, raw/ (customer-support messages → JSON, in
    Alpaca and OpenAI-chat formats, with a few broken rows and duplicates on purpose, and general
    conversations mixed into training against forgetting) and tiny-model/ (a small Llama
    pre-trained offline on general text, cached after the first build).

    With --model smollm2-135m-instruct alone: a real pretrained model offline (SmolLM2-135M-Instruct
    from a PyPI wheel, converted once), LoRA on support tickets → JSON, general chat mixed in, and
    gates for a real model (about 15 minutes on 2 CPU cores).

    Examples:

        sftflow init my-project --model Qwen/Qwen2.5-0.5B-Instruct --data questions.csv

        sftflow init quickstart && sftflow run quickstart/sftflow.yaml

        sftflow init smol --model smollm2-135m-instruct && sftflow run smol/sftflow.yaml

        sftflow init --tiny-model ./tiny
    """
    with user_errors(None if tiny_model else directory, "init"):
        if tiny_model:
            from sftflow.model.tiny import build_tiny_model

            build_tiny_model(directory, log=log)
            log(f"tiny model ready: {directory}")
            return
        if data and model is None:
            raise SftflowError("--data needs --model: the model to fine-tune on it (a hub id, a folder or a .gguf)")
        if mix_general and not data:
            raise SftflowError("--mix-general goes with --data (the quickstart and ready projects mix their own)")
        if data:
            from sftflow.init_project import write_data_project

            made = write_data_project(directory, model, data, mix_general=mix_general, force=force, log=log)
            show_rendered(*made.example)
            log(f"project ready: {made.config_path}\nnext: sftflow prepare {made.config_path} && "
                f"sftflow run {made.config_path}")
            return
        if model is not None:
            from sftflow.real_project import write_model_project

            config_path = write_model_project(directory, model, force=force, log=log)
        else:
            from sftflow.project import write_quickstart_project

            config_path = write_quickstart_project(directory, n=examples, force=force, log=log)
        log(f"project ready: {config_path}\nnext: sftflow run {config_path}")
