"""bmfleet.store."""
