"""The policy layer: what people may do to alerts and production, and the one place it is decided.

Slack, the HTTP API and the CLI are thin adapters over these services: silences (one validation,
one set of limits), incident actions (ack / resolve), runbook approvals (who, how many, how long,
what exactly) and the roles behind them. Adapters never decide who may do what themselves.
"""
