"""The experiments REST API: routes (urls.py), typed shapes (serializers.py), one view per operation (experiments.py)."""
