"""Every label value our labelled counters can take that is known before traffic, so each series
exists at 0 from the start.

Why: a counter series that appears with its first event at 1 has no earlier sample, so rate() and
increase() never count that event (the first rate-limit refusals stayed invisible), and a panel of a
healthy server shows "No data" instead of 0.
"""

from __future__ import annotations

# mixtral_rejected_requests_total{reason}: auth and body size (http/), the admission codes
# (admission/gate.py, key_limits.py, redis_keys.py) and the fallback for a refusal without a code.
REJECTION_REASONS = (
    "auth",
    "body_too_large",
    "server_overloaded",
    "queue_full",
    "concurrency_limit_exceeded",
    "requests_per_minute_exceeded",
    "tokens_per_minute_exceeded",
    "quota_exceeded",
    "shared_state_unavailable",
    "rate_limit",
)
# RequestContext.finish_reason() of an answered (200) request.
ANSWERED_FINISH_REASONS = ("stop", "length", "abort", "timeout", "error")
# mixtral_request_success_total{finish_reason}: what a finished choice reports.
CHOICE_FINISH_REASONS = ("stop", "length")
# The routes whose disconnects are counted (http/disconnect.py labels by route path).
DISCONNECT_ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/responses")
TOKEN_KINDS = ("prompt", "completion")
