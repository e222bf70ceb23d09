"""The composition root: builds every component and hands each what it needs; serve,
and the supervisor of --workers.
"""
