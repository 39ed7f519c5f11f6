"""Searcher tools: detector, guidebook, OCR, geocoder, crop comments (each loaded once)."""
from navig.searcher.records import Detection, GeoHit, GuidebookHit

__all__ = ["Detection", "GeoHit", "GuidebookHit"]
