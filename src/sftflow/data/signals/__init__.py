"""What each record is: converted, scored and keyed row by row (rows.py, in workers; pass 1 in
stream.py), and the filters that need more than one row: the LLM judge and the semantic step."""
