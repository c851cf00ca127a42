"""Demand-response event intake adapters (OpenADR 2.0b VEN)."""
