// Validate one captured webhook request with the official Node server SDK.
//
// stdin: {"app_id": "...", "key": "...", "secret": "...",
//         "headers": {"x-pusher-key": "...", ...}, "body": "<raw body as sent>"}
// stdout: {"valid": true|false, "events": [...]|null, "time_ms": <number>|null}
// Exit status 0 when valid, 1 when not, 2 on bad input.
"use strict";

const Pusher = require("pusher");

function main(input) {
  const req = JSON.parse(input);
  const pusher = new Pusher({ appId: req.app_id, key: req.key, secret: req.secret });
  const headers = {};
  for (const [name, value] of Object.entries(req.headers)) {
    headers[name.toLowerCase()] = value;
  }
  const webhook = pusher.webhook({ headers, rawBody: req.body });
  const valid = webhook.isValid();
  const out = {
    valid,
    events: valid ? webhook.getEvents() : null,
    time_ms: valid ? webhook.getTime().getTime() : null,
  };
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exitCode = valid ? 0 : 1;
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  input += chunk;
});
process.stdin.on("end", () => {
  try {
    main(input);
  } catch (err) {
    process.stderr.write(String(err) + "\n");
    process.exitCode = 2;
  }
});
