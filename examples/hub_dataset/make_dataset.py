"""A Hugging Face dataset on disk, as `datasets` saves it, for the hub-dataset example.

    cd examples/hub_dataset
    python make_dataset.py glossary         # writes glossary/ (DatasetDict.save_to_disk, split "train")
    sftflow prepare sftflow.yaml

sftflow reads a hub id (`path: org/name`) with `datasets.load_dataset` and a `save_to_disk`
folder with `load_from_disk`, split by split, through the same code; this example uses a folder so
that it runs offline (tests/test_examples.py runs it). With internet access, point `path` at a hub
id instead, e.g. `{path: tatsu-lab/alpaca, split: train, max_rows: 2000}`.
"""

from __future__ import annotations

import sys

# prompt/completion columns, as TRL's own hub datasets have them
ROWS = [
    ("What is fine-tuning?", "Training a pretrained model further on a smaller, task-specific dataset so it learns that task."),
    ("What is LoRA?", "Low-rank adaptation: small trainable matrices are added beside the frozen weights, so only a few million parameters are trained."),
    ("What is QLoRA?", "LoRA on top of a base model loaded in 4-bit precision, which cuts the memory the frozen weights need."),
    ("What is a learning rate?", "The size of each update step the optimizer takes; too high and training diverges or forgets, too low and it barely learns."),
    ("What is an epoch?", "One full pass of training over every example in the training split."),
    ("What is a validation split?", "Examples held out from training and used to measure loss during training, for early stopping."),
    ("What is a test split?", "Examples the model never sees during training or model selection, used only for the final evaluation."),
    ("What is early stopping?", "Ending training when validation loss stops improving, and keeping the best checkpoint instead of the last."),
    ("What is overfitting?", "When a model learns its training examples so closely that it does worse on new ones: training loss falls while validation loss rises."),
    ("What is catastrophic forgetting?", "The loss of abilities a model had before fine-tuning, such as general knowledge or tone, caused by training on a narrow task."),
    ("What is a chat template?", "The model's own recipe for turning a list of messages into one string of tokens, with role markers and end-of-turn tokens."),
    ("What is loss masking?", "Computing the training loss only on the answer tokens, so the model is not trained to reproduce the prompts."),
    ("What is perplexity?", "The exponential of the average negative log-likelihood per token; lower means the model finds the text less surprising."),
    ("What is a tokenizer?", "The component that splits text into the integer tokens a model reads, and turns generated tokens back into text."),
    ("What is gradient accumulation?", "Adding up the gradients of several small batches before one optimizer step, to train with a larger effective batch."),
    ("What is a hallucination in a language model?", "A generated statement that the input and the known facts do not support, such as an invented number or name."),
    ("What is data deduplication?", "Removing exact and near-identical examples so no example is over-weighted and none leaks between splits."),
    ("What is a GGUF file?", "The single-file model format of llama.cpp, used by Ollama and LM Studio, often with quantized weights."),
    ("What does merging an adapter mean?", "Adding the LoRA update into the base weights so the result is an ordinary model that loads without PEFT."),
    ("What is a regression probe?", "A prompt outside the training task asked of the base and tuned model, to catch behaviour that fine-tuning broke."),
]


def main(out: str) -> None:
    from datasets import Dataset, DatasetDict, disable_progress_bars

    disable_progress_bars()

    rows = [{"prompt": p, "completion": c} for p, c in ROWS]
    DatasetDict({"train": Dataset.from_list(rows)}).save_to_disk(out)
    print(f"wrote {out}/ ({len(rows)} rows, split train)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "glossary")
