"""Files shipped with Kinema: the sample image."""
