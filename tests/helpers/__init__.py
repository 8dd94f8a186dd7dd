"""Test oracles and runners shared by the test tiers."""
