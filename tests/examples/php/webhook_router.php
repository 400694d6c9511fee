<?php

// Router for `php -S 127.0.0.1:PORT webhook_router.php`: runs the Laravel recipe's
// framework-free logic (examples/webhooks/laravel/app/Support/PusherWebhook.php) with
// the two Laravel pieces replaced: Cache::add becomes an exclusive file create in
// $PUSHERD_CLAIMS_DIR (atomic, like Cache::add), and handled events are printed as JSON
// lines on the server's stdout for the test to read.

require __DIR__.'/../../../examples/webhooks/laravel/app/Support/PusherWebhook.php';

use App\Support\PusherWebhook;

if ($_SERVER['REQUEST_METHOD'] !== 'POST' || parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) !== '/pusher/webhook') {
    http_response_code(404);
    echo json_encode(['error' => 'not found']);

    return true;
}

$claimsDir = getenv('PUSHERD_CLAIMS_DIR');
$webhook = new PusherWebhook((string) getenv('PUSHER_APP_KEY'), (string) getenv('PUSHER_APP_SECRET'));
[$status, $body] = $webhook->process(
    file_get_contents('php://input'),
    $_SERVER['HTTP_X_PUSHER_KEY'] ?? null,
    $_SERVER['HTTP_X_PUSHER_SIGNATURE'] ?? null,
    function (string $id) use ($claimsDir): bool {
        $handle = @fopen($claimsDir.'/'.hash('sha256', $id), 'x');
        if ($handle === false) {
            return false;
        }
        fclose($handle);

        return true;
    },
    function (array $event): void {
        file_put_contents('php://stdout', json_encode(['handled' => $event['id'], 'event' => $event])."\n");
    },
);
http_response_code($status);
header('Content-Type: application/json');
echo json_encode($body);

return true;
