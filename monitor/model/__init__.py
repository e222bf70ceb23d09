"""Plain data every layer shares: a hit, its flags and verdict, ids, domain errors.
Imports nothing of ours.
"""
