"""Helpers shared by the service tests: databases, engines, HTTP servers and API calls."""
