"""Label-only access to a suspect model: the HTTP server (`fsw serve`), its client, the wire format."""
