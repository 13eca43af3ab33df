"""Ingest: Alertmanager's alerts become incidents and outbox intents, in one transaction per batch.

See docs/architecture.md for the stages, the writer and the layers.
"""
