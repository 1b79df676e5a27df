"""InferWatch evaluators: see ../shared/ARCHITECTURE.md; not built yet."""
