"""`python -m sftflow ...`: what torchrun and accelerate launch start on every rank."""

from sftflow.cli import main

main()
