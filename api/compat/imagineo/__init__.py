"""ImagineoAI's API under /compat/imagineo/ (docs/compat-imagineo.md): POST /generate (async: a
run id at once), GET /generations/{run_id}, GET /models, its field names and its
`{"error": {"code", "message"}}` envelope."""
