"""agent-runtime: durable, addressable AI agents on AWS serverless."""
