"""The bridge's migrations (schema `bridge`)."""
