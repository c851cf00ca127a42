"""The HTTP API (FastAPI). Routers live here; the operations server mounts them."""
