"""bmfleet.gateway."""
