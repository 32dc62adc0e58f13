"""Claid's image generation (`POST /v1/image/generate`: `input`, `options`, `output`) under
/compat/claid/, answered synchronously in Claid's shape (`data.output[]` with `tmp_url` or the
object's place in the caller's storage), with Claid's error shape and `ratelimit-*` headers.
docs/compat-claid.md has the mapping."""
