"""Runbooks: data (YAML) describing typed steps; each step plans (reads, computes) before it applies."""
