"""Every record's fate: the rule filters, duplicates, conflicting labels, splits and the rules for
mix-in, synthetic and weighted rows (rules.py); `Fate` names the outcomes (fate.py)."""
