"""Test doubles: stand-ins for tools the tests cannot run for real. Never used outside tests."""
