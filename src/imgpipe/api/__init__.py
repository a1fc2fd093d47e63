"""The HTTP API: ``create_app(settings)``, its routes, schemas and problem responses, and the web page."""
