"""Kinema: self-hosted image-to-video generation."""

from __future__ import annotations

__version__ = "0.1.0"
