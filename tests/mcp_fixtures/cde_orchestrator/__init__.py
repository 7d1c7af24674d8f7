"""Test stand-in for the upstream CDE Orchestrator package (see tests/mcp_fixtures/README.md)."""
