"""`sftflow serve`: an OpenAI-compatible API over a fine-tuned run (app.py), speaking the wire format
of schemas.py."""
