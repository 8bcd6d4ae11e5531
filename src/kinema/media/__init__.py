"""Pictures and video in and out: image intake, colour conversion, H.264 encoding."""
