"""The account of every decision: rows collected in pass 1, splits written in pass 2, the leakage
check in pass 3, the ledger, stats.json, the data card and the log, and `sftflow audit`."""
