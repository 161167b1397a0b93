"""Adapters for the ports in `agent_runtime.ports`: `memory` (reference) and `aws`."""
