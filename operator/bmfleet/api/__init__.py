"""bmfleet.api."""
