"""The monitoring REST API under `/api/v1/`: routes (urls.py), typed shapes (serializers.py), one view per operation in a
module per concept: ingestion (events, labels, OpenTelemetry spans), drift (references, drift reports), alerts, costs
(budgets, prices) and metrics (the Prometheus scrape endpoint, `/metrics`)."""
