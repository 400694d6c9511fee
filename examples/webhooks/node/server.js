// A runnable receiver: PUSHER_APP_KEY=... PUSHER_APP_SECRET=... PORT=3000 node server.js
// Each handled event is printed as one JSON line; replays are printed as duplicates.
'use strict';

const express = require('express');
const { pusherWebhook } = require('./webhook');

const app = express();
app.post(
  '/pusher/webhook',
  express.raw({ type: 'application/json', limit: '1mb' }),
  pusherWebhook({
    key: process.env.PUSHER_APP_KEY,
    secret: process.env.PUSHER_APP_SECRET,
    onEvent: async (event) => {
      process.stdout.write(JSON.stringify({ handled: event.id, event }) + '\n');
    },
  }),
);

const port = Number(process.env.PORT || 3000);
const server = app.listen(port, process.env.HOST || '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ listening: server.address().port }) + '\n');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
