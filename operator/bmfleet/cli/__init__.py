"""bmfleet.cli."""
