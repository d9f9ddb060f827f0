"""The MLflow REST API (`/api/2.0/mlflow/...` and the artifact proxy), as the official MLflow 3 client calls it, over
the registry's runs and versions. Shapes and error codes are MLflow's; the rules are the registry's."""
