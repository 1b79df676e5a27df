"""InferWatch alerting: see ../shared/ARCHITECTURE.md; not built yet."""
