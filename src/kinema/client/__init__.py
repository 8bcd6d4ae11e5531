"""The Python SDK for Kinema and any server that speaks the market-jobs API."""
