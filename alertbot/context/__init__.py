"""Incident context: what a page carries besides the alert — failing traces (and the graph)."""
