"""Serving: an OpenAI-compatible gateway that traces every request to vLLM.

``gateway`` is the FastAPI reverse proxy; its pure parts are ``sse`` (the
event-stream parser), ``redact`` (PII removal before text leaves the process)
and ``genai`` (request/response to GenAI span attributes, log-prob summary).
"""
