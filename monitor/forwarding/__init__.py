"""Relaying hits to their targets: the outbox filled in the writer's transaction, the
worker that delivers it, the guarded outbound client, and the postback tester.
"""
