"""Guardrails: PII, secrets, prompt injection, banned words and topics, JSON schema, LLM judge (see step.py)."""
