"""Files users upload, and retention of everything the service stores."""
