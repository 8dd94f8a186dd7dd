"""bmfleet.toolchains."""
