"""VLM backends behind one interface (`VLM.generate`, `VLM.generate_each`)."""
from navig.backends.base import VLM, CallStats, VLMError, VLMRequest, VLMRequestError, load_vlm

__all__ = ["VLM", "CallStats", "VLMError", "VLMRequest", "VLMRequestError", "load_vlm"]
