// Express middleware for pusherd (and Pusher) webhooks: signature check and de-duplication.
//
// pusherd signs every POST: X-Pusher-Key is the app key and X-Pusher-Signature the hex
// HMAC-SHA256 of the raw body keyed with the app secret. Delivery is at least once, so each
// event id is handled once. The body must be read raw (express.raw), never re-serialized.
'use strict';

const crypto = require('crypto');

// Same-length buffers compared in constant time (timingSafeEqual throws on a length mismatch).
function safeEqual(a, b) {
  const left = Buffer.from(String(a), 'utf8');
  const right = Buffer.from(String(b), 'utf8');
  return left.length === right.length && crypto.timingSafeEqual(left, right);
}

function verify(rawBody, keyHeader, signatureHeader, key, secret) {
  if (!keyHeader || !signatureHeader) return false;
  const expected = crypto.createHmac('sha256', secret).update(rawBody).digest('hex');
  const keyOk = safeEqual(keyHeader, key);
  const signatureOk = safeEqual(String(signatureHeader).toLowerCase(), expected);
  return keyOk && signatureOk;
}

// Remembers ids for ttlMs in this process. With several processes, use a shared store
// (Redis SET NX EX) so a retry landing on another process is still recognised.
function memoryClaims(ttlMs = 10 * 60 * 1000) {
  const seen = new Map();
  return async (id) => {
    const now = Date.now();
    for (const [old, expires] of seen) {
      if (expires > now) break;
      seen.delete(old);
    }
    if (seen.has(id)) return false;
    seen.set(id, now + ttlMs);
    return true;
  };
}

// pusherWebhook({key, secret, onEvent, claim}) -> an Express handler for a POST route that
// was given express.raw({type: 'application/json'}).
function pusherWebhook({ key, secret, onEvent, claim = memoryClaims() }) {
  return async (req, res) => {
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    if (!verify(raw, req.get('X-Pusher-Key'), req.get('X-Pusher-Signature'), key, secret)) {
      return res.status(401).json({ error: 'invalid signature' });
    }
    let payload;
    try {
      payload = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      return res.status(400).json({ error: 'invalid JSON' });
    }
    let handled = 0;
    let duplicates = 0;
    for (const event of payload.events || []) {
      if (!event.id || !(await claim(String(event.id)))) {
        duplicates += 1;
        continue;
      }
      await onEvent(event);
      handled += 1;
    }
    // Any 2xx acknowledges the whole POST; anything else makes pusherd retry it.
    return res.json({ ok: true, handled, duplicates });
  };
}

module.exports = { memoryClaims, pusherWebhook, verify };
