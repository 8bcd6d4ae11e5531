"""Accounts, their API keys and their credits."""
