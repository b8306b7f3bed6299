"""The chat models prepare and synth talk to: endpoints and local models with budgets and retries
(teacher.py), prompt templates and JSON replies (prompts.py). Shared by synth and the judge."""
