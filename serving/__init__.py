"""InferWatch serving: see ../shared/ARCHITECTURE.md; not built yet."""
