"""lmgate: an LLM gateway."""
