"""bmfleet.gates."""
