"""Livepeer's AI gateway image-to-image under /compat/livepeer/ (docs/compat-livepeer.md):
multipart with every documented field, answered synchronously as `{"images": [...]}`, with
Livepeer's (FastAPI's) error shapes."""
