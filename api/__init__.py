"""How people and systems use evocdss: the CLI and the HTTP API."""
