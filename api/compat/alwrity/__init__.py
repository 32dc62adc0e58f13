"""ALwrity's Image Studio (`/api/image-studio/…`: create, templates, providers, estimate-cost,
edit, upscale, control, social optimizer, platform specs, health) under /compat/alwrity/. The
studios answer synchronously in ALwrity's shape (images as base64), errors as `{"detail"}`;
`null` fields mean "the default". docs/compat-alwrity.md has the mapping."""
