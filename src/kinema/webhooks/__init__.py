"""Callbacks: signing them, delivering them from the outbox, and what clients can see of them."""
