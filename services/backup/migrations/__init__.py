"""The backup service's migrations (schema `backup`)."""
