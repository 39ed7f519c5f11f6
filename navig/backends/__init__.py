"""VLM backends behind one interface (`VLM.generate`)."""
from navig.backends.base import VLM, CallStats, VLMRequest, load_vlm

__all__ = ["VLM", "CallStats", "VLMRequest", "load_vlm"]
