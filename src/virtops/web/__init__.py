"""The web console and REST API of `virtops serve` (FastAPI, Jinja2, libvirt events)."""
