"""The OpenAI Images API (`/v1/images/generations|edits|variations`) over renderq's own runs:
OpenAI's fields in, an ordinary renderq run created through api/submission, OpenAI's answer and
error envelope out. The mapping is documented in docs/openai.md."""
