<?php

// Framework-free verification and de-duplication of pusherd (and Pusher) webhooks.
//
// pusherd signs every POST: X-Pusher-Key is the app key and X-Pusher-Signature the hex
// HMAC-SHA256 of the raw body keyed with the app secret. Delivery is at least once: a
// retry (or a replayed request) carries the same event ids, so each id is handled once.

namespace App\Support;

final class PusherWebhook
{
    public function __construct(private string $appKey, private string $appSecret)
    {
    }

    /** True if the request was signed by this app. Constant-time on both headers. */
    public function verify(string $rawBody, ?string $keyHeader, ?string $signatureHeader): bool
    {
        if ($keyHeader === null || $signatureHeader === null) {
            return false;
        }
        $expected = hash_hmac('sha256', $rawBody, $this->appSecret);
        $keyOk = hash_equals($this->appKey, $keyHeader);
        $signatureOk = hash_equals($expected, strtolower($signatureHeader));

        return $keyOk && $signatureOk;
    }

    /**
     * Verify, then hand each event not seen before to $handle.
     *
     * $claim(string $id): bool must atomically record the id and return false if it was
     * already recorded (Laravel: Cache::add). Keep ids longer than pusherd's retry_for.
     *
     * @param  callable(string): bool  $claim
     * @param  callable(array): void  $handle
     * @return array{0: int, 1: array<string, mixed>} the HTTP status and the JSON answer
     */
    public function process(
        string $rawBody,
        ?string $keyHeader,
        ?string $signatureHeader,
        callable $claim,
        callable $handle,
    ): array {
        if (! $this->verify($rawBody, $keyHeader, $signatureHeader)) {
            return [401, ['error' => 'invalid signature']];
        }
        $payload = json_decode($rawBody, true);
        if (! is_array($payload) || ! is_array($payload['events'] ?? null)) {
            return [400, ['error' => 'no events']];
        }
        $handled = 0;
        $duplicates = 0;
        foreach ($payload['events'] as $event) {
            $id = (string) ($event['id'] ?? '');
            if ($id === '' || ! $claim($id)) {
                $duplicates++;
                continue;
            }
            $handle($event);
            $handled++;
        }

        // Any 2xx acknowledges the whole POST; anything else makes pusherd retry it.
        return [200, ['ok' => true, 'handled' => $handled, 'duplicates' => $duplicates]];
    }
}
