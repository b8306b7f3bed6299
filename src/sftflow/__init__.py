"""sftflow: supervised fine-tuning with the discipline most projects skip."""

__version__ = "0.1.0"
