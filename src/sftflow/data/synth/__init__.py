"""`sftflow synth`: candidate examples written by a teacher model from seeds (generate.py, seeds.py)."""
