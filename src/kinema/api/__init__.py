"""The HTTP API: routers that the app factory mounts."""
