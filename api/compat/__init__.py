"""The reference services' own APIs, each a thin adapter in its own package (api/compat/<service>/)
mounted under /compat/<service>/: the service's request translated into a native body and
submitted through api/submission (an ordinary run under the caller's key), the run translated
back into the service's answer, and every error in the service's shape (api/compat/errors.py).
api/compat/common.py has what they share; api/dialects.py lists them for the app."""
