"""InferWatch ui: see ../shared/ARCHITECTURE.md; not built yet."""
