"""The default engine: a virtual camera moving over the still, on any CPU, with no weights."""
