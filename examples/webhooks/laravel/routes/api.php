<?php

// routes/api.php: API routes carry no CSRF middleware, which a webhook must not have.
// Laravel 11: `php artisan install:api` creates this file. Point pusherd at it with
//   [[apps.webhooks]]
//   url = "https://your-app.test/api/pusher/webhook"

use App\Http\Controllers\PusherWebhookController;
use Illuminate\Support\Facades\Route;

Route::post('/pusher/webhook', PusherWebhookController::class);
