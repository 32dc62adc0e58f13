"""LimeWire's Studio API under /compat/limewire/ (docs/compat-limewire.md): image generation,
upscaling, outpainting, inpainting and asset upload, answered synchronously in LimeWire's shape
(credits fields, `Accept: image/png` for one image) with RFC 7807 errors."""
