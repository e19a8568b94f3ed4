"""Fleet side: ingest, model registry, clustering into a primitive library, OTA rollout."""
