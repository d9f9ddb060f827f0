"""The registry REST API under `/api/v1/`: routes (urls.py), typed shapes (serializers.py), one view per operation in a
module per concept: models (versions, stages, promotions, rollback, audit), prompts, gates (evaluations, gate cards,
policies, dataset schemas)."""
