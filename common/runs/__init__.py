"""What a run leaves on disk: the predictions CSV and run.json, written and read back with every field checked
(`outputs`), and the run folder as a transaction, so that adapter, predictions and run.json appear together
or not at all (`transaction`). Imports only `core`.
"""
