"""The InferWatch collector: OTLP traces in, rows in Postgres out.

Stages, each its own module: ``body`` (HTTP body limits and decompression),
``decode`` (OTLP protobuf/JSON to messages), ``values`` and ``genai`` (pure
attribute conversion and LLM fact lifting), ``mapping`` (span to row),
``writer`` (group-committed bulk writes), ``app`` (the HTTP surface).
"""
