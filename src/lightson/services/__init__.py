"""Application services shared by the HTTP API, the CLI and protocol adapters."""
