"""The paths outside scripts and senders depend on, shared by both listeners.

Capture answers ``ANY /p/{token}[/{tail}]``; both listeners answer the probes.
"""

from __future__ import annotations

CAPTURE_PREFIX = "/p/"
HEALTHZ = "/healthz"
READYZ = "/readyz"
# A share link's read-only view of one endpoint (management listener, no sign-in).
SHARE_PREFIX = "/s/"
