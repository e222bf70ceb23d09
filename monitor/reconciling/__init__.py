"""Reconciliation runs: a network's conversion report, spooled to a file, read by the
report reader in a worker thread, COPY'd into a scratch table and matched against
the captured hits in SQL (storage/reconciliation_match.py); in the server's process
as background tasks, or in the CLI's.
"""
