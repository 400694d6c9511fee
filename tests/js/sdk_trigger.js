// Publish through the official Node server SDK with an idempotency key.
//
// stdin: {"app_id", "key", "secret", "host", "port", "channel", "event", "data",
//         "idempotency_key", "times", "batch": false}
// stdout: one line per call: {"status": <number>, "body": "<response body>"}
// With "batch": true every call is a triggerBatch of one item carrying the key.
"use strict";

const Pusher = require("pusher");

async function main(input) {
  const req = JSON.parse(input);
  const pusher = new Pusher({
    appId: req.app_id,
    key: req.key,
    secret: req.secret,
    host: req.host,
    port: String(req.port),
    useTLS: false,
  });
  for (let i = 0; i < req.times; i++) {
    let response;
    try {
      response = req.batch
        ? await pusher.triggerBatch([
            { channel: req.channel, name: req.event, data: req.data, idempotency_key: req.idempotency_key },
          ])
        : await pusher.trigger(req.channel, req.event, req.data, { idempotency_key: req.idempotency_key });
    } catch (e) {
      // the SDK rejects non-2xx answers with a RequestError carrying the response
      response = e.response || null;
      if (!response) throw e;
    }
    process.stdout.write(JSON.stringify({ status: response.status, body: await response.text() }) + "\n");
  }
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () =>
  main(input).catch((e) => {
    process.stderr.write(String((e && e.stack) || e) + "\n");
    process.exitCode = 2;
  }),
);
