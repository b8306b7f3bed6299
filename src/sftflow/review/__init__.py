"""Human review of a run's test predictions: a small web app, its SQLite store and statistics.

    sftflow review runs/quickstart      # prints a login URL with a random token
    sftflow report sftflow.yaml         # merges the ratings: human win rate, gates human_*
"""
