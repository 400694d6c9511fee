"""Webhook delivery: signed, retried, ordered POSTs that never block the event loop.

Modules: ``queue`` (per-target ordered queue), ``request`` (body, signature, headers),
``sender`` (``WebhookSender``: workers, retries, delays, bounds).

Wire format (PROTOCOL.md §1.17): ``POST`` with body ``{"time_ms": ..., "events": [...]}``,
``Content-Type: application/json`` exactly (the Node SDK refuses a charset suffix),
``X-Pusher-Key`` and ``X-Pusher-Signature = HMAC-SHA256-hex(secret, raw body)``, plus the
target's extra headers and ``X-Pusherd-Delivery``, the id of that POST.

Design, learned from soketi's and sockudo's senders:

- One ordered queue and one worker task per (app, target). A slow or failing target only
  delays itself; soketi's single global batch buffer mixed apps and endpoints.
- ``emit()`` only appends to a deque and sets an event, so the WebSocket hot path never
  waits on HTTP.
- At-least-once: a POST is built once (ids, ``time_ms``, body, signature, delivery id) and the
  same bytes are re-sent on every retry, so receivers de-duplicate on ``id``. Retries use
  capped exponential backoff with jitter until ``retry_for`` seconds after the first attempt.
- ``emit_later()`` reserves the event's place in each target queue at once and resolves it
  after the delay (sent if ``confirm()`` is true, removed otherwise). Later events for the
  same channel wait behind an unresolved slot; events for other channels go ahead.
- The total of queued events is bounded by ``max_queue``; past it new events are dropped
  and counted.

Secrets and signatures are never logged; targets are logged as ``#index (scheme://host:port/...)``
because URL paths and queries often carry tokens.
"""

from __future__ import annotations

from pusherd.webhooks.sender import WebhookSender

__all__ = ["WebhookSender"]
