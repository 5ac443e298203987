"""Evaluators: each takes a trained artefact and a dataset and returns numbers."""
