"""audit/sinks package."""
