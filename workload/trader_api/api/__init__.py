"""HTTP API: create_app(), thin routers, typed dependencies."""
