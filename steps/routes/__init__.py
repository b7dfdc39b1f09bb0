"""Routing-table steps: routes.snapshot and routes.compare (gorouter /routes and NATS)."""
