"""Constructs composed by `infra.stack.AgentRuntimeStack`; each exposes its resources."""
