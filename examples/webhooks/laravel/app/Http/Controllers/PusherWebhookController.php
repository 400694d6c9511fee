<?php

namespace App\Http\Controllers;

use App\Support\PusherWebhook;
use Illuminate\Http\JsonResponse;
use Illuminate\Http\Request;
use Illuminate\Support\Facades\Cache;

// POST /api/pusher/webhook: verifies the signature, handles each event id once.
class PusherWebhookController extends Controller
{
    public function __invoke(Request $request): JsonResponse
    {
        $connection = config('broadcasting.default') === 'pusher' ? 'pusher' : 'reverb';
        $webhook = new PusherWebhook(
            (string) config("broadcasting.connections.$connection.key"),
            (string) config("broadcasting.connections.$connection.secret"),
        );

        [$status, $body] = $webhook->process(
            $request->getContent(),
            $request->header('X-Pusher-Key'),
            $request->header('X-Pusher-Signature'),
            // Cache::add is atomic and false when the key exists: one handler per id,
            // across every PHP worker sharing the cache store.
            fn (string $id): bool => Cache::add('pusher-webhook:'.$id, true, now()->addMinutes(10)),
            fn (array $event) => $this->handle($event),
        );

        return response()->json($body, $status);
    }

    private function handle(array $event): void
    {
        // Answer fast: queue anything slow (dispatch a job) so pusherd's timeout is never hit.
        match ($event['name']) {
            'member_added' => \App\Models\User::whereKey($event['user_id'])->update(['online' => true]),
            'member_removed' => \App\Models\User::whereKey($event['user_id'])->update(['online' => false]),
            default => null,
        };
    }
}
