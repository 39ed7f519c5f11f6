"""Helpers shared by collect, annotate and navig (atomic writes, safe names, fingerprints,
secret redaction). Standard library + pydantic only, so every extra can depend on it."""
