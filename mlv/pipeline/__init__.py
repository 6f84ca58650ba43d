"""Pipelines: stages in mlv.yaml, their graph, mlv.lock, and reproduction."""
