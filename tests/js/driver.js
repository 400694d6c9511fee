#!/usr/bin/env node
// Conformance driver: one real client (pusher-js, or Laravel Echo on top of pusher-js) per
// process, driven by JSON commands on stdin and reporting every observation as one JSON line
// on stdout. The pytest suite (tests/e2e/conftest.py) spawns it and awaits lines.
//
//   node driver.js '<spec JSON>'
//
// Spec fields:
//   kind          "pusher" (default) | "echo"
//   host, port    where the server listens (ws://host:port/app/<key>)
//   key, secret   app credentials; the secret is used only by the "local" auth mode, which
//                 signs exactly like a Laravel backend (pusher-http-php) would
//   master_key_base64   encryption master key (private-encrypted- channels, local auth mode)
//   user          {id, user_info?, watchlist?} the user this client authenticates as
//   auth          "local" (default: channelAuthorization/userAuthentication customHandler)
//                 | "endpoint" (pusher-js/Echo POST to auth_endpoint / user_auth_endpoint)
//   auth_endpoint, user_auth_endpoint   URLs for the "endpoint" mode
//   bad_channels  channel names the local authorizer signs with a wrong secret
//   options       extra pusher-js (or Echo) options, merged last
//   log           true: also print pusher-js's own log lines as {"t":"log"}
//
// Output lines ("t" is the type; every line also has "ms", milliseconds since the driver started):
//   ready, state {previous,current}, connected {socket_id}, error {error},
//   ws_connecting {url}, ws_open, ws_recv {raw,msg}, ws_send {raw,msg}, ws_close {code,reason},
//   event {channel,event,data,metadata}   everything pusher-js emits on a subscribed channel
//   user_event {event,data}               pusher.user events (server-to-user, signin_error)
//   signin_success {user_data}, watchlist {name,user_ids}
//   echo_event {channel,listen,data}, echo_whisper {channel,name,data}, echo_here {channel,
//   members}, echo_joining/echo_leaving {channel,member}, echo_subscribed {channel},
//   echo_error {channel,error}
//   result {cmd,ok,value?,error?}        the outcome of every command
//
// Commands (one JSON object per stdin line, field "cmd"):
//   subscribe {channel, bad?}  unsubscribe {channel}  trigger {channel,event,data}
//   trigger_many {channel,event,count}  (sends {i} payloads back to back, in one tick)
//   send_event {event,data,channel?}  signin  connect  disconnect  state  members {channel}  exit
//   echo_channel {name, type: public|private|encrypted|presence, listen?: [names],
//                 whispers?: [names], notification?: bool}
//   echo_whisper {name, type, event, data}   echo_leave {name}   echo_signin
//   cut                         destroy the open socket's TCP stream: a network cut, no
//                               close frame (pusher-js sees 1006 and reconnects itself)
//   watch_numbers {channel, event, total}   print {"t":"complete"} once ``total`` distinct
//                               data.n of that event arrived on that channel

'use strict';

const crypto = require('crypto');
const readline = require('readline');
const Pusher = require('pusher-js');

const spec = JSON.parse(process.argv[2] || '{}');
const kind = spec.kind || 'pusher';
const user = spec.user || null;
const badChannels = new Set(spec.bad_channels || []);

function safe(value) {
  return JSON.parse(
    JSON.stringify(value === undefined ? null : value, (key, v) => {
      if (v instanceof Error) return { name: v.name, message: v.message };
      if (typeof v === 'function') return undefined;
      return v;
    }),
  );
}

const started = Date.now();
function out(obj) {
  let line;
  try {
    line = JSON.stringify({ ...obj, ms: Date.now() - started });
  } catch (e) {
    line = JSON.stringify({ t: 'unserializable', what: String(obj && obj.t), error: String(e) });
  }
  process.stdout.write(line + '\n');
}

// ---- auth, signed the way a Laravel backend signs (pusher-http-php) --------------------------

// PHP's json_encode() with default flags escapes "/" and every non-ASCII UTF-16 unit. The
// server must verify the exact string it was sent, never a re-serialization of it.
function phpJson(value) {
  return JSON.stringify(value)
    .replace(/\//g, '\\/')
    .replace(/[\u0080-\uffff]/g, (ch) => '\\u' + ch.charCodeAt(0).toString(16).padStart(4, '0'));
}

function hmac(secret, text) {
  return crypto.createHmac('sha256', secret).update(text, 'utf8').digest('hex');
}

function channelAuth(socketId, channel) {
  const secret = badChannels.has(channel) ? spec.secret + '-wrong' : spec.secret;
  const response = {};
  let toSign = socketId + ':' + channel;
  if (channel.startsWith('presence-')) {
    if (!user) throw new Error('presence channel needs spec.user');
    const channelData = { user_id: user.id };
    if (user.user_info && Object.keys(user.user_info).length) channelData.user_info = user.user_info;
    response.channel_data = phpJson(channelData);
    toSign += ':' + response.channel_data;
  }
  response.auth = spec.key + ':' + hmac(secret, toSign);
  if (channel.startsWith('private-encrypted-')) {
    const master = Buffer.from(spec.master_key_base64 || '', 'base64');
    response.shared_secret = crypto
      .createHash('sha256')
      .update(Buffer.concat([Buffer.from(channel, 'utf8'), master]))
      .digest('base64');
  }
  return response;
}

function userAuth(socketId) {
  if (!user) throw new Error('signin needs spec.user');
  const data = { id: String(user.id) };
  if (user.user_info) data.user_info = user.user_info;
  if (user.watchlist) data.watchlist = user.watchlist;
  const userData = phpJson(data);
  return { auth: spec.key + ':' + hmac(spec.secret, socketId + '::user::' + userData), user_data: userData };
}

function authOptions() {
  if ((spec.auth || 'local') === 'endpoint') {
    return {
      channelAuthorization: { endpoint: spec.auth_endpoint, transport: 'ajax' },
      userAuthentication: { endpoint: spec.user_auth_endpoint, transport: 'ajax' },
    };
  }
  return {
    channelAuthorization: {
      customHandler: (params, callback) => {
        try {
          callback(null, channelAuth(params.socketId, params.channelName));
        } catch (e) {
          callback(e, null);
        }
      },
    },
    userAuthentication: {
      customHandler: (params, callback) => {
        try {
          callback(null, userAuth(params.socketId));
        } catch (e) {
          callback(e, null);
        }
      },
    },
  };
}

// ---- wire tap: every frame and close code the client sees --------------------------------------

const sockets = [];
const originalCreate = Pusher.Runtime.createWebSocket;
Pusher.Runtime.createWebSocket = function (url) {
  const ws = originalCreate.call(this, url);
  sockets.push(ws);
  out({ t: 'ws_connecting', url });
  ws.addEventListener('open', () => out({ t: 'ws_open' }));
  ws.addEventListener('message', (m) => {
    let msg = null;
    try {
      msg = JSON.parse(m.data);
    } catch (e) {
      msg = null;
    }
    out({ t: 'ws_recv', raw: String(m.data), msg });
  });
  ws.addEventListener('close', (e) => {
    out({ t: 'ws_close', code: e.code, reason: e.reason || '', wasClean: !!e.wasClean });
  });
  const send = ws.send.bind(ws);
  ws.send = (data) => {
    let msg = null;
    try {
      msg = JSON.parse(data);
    } catch (e) {
      msg = null;
    }
    out({ t: 'ws_send', raw: String(data), msg });
    return send(data);
  };
  return ws;
};

if (spec.log) {
  Pusher.log = (message) => out({ t: 'log', message: String(message) });
}

// ---- the client ------------------------------------------------------------------------------

const baseOptions = {
  cluster: '',
  wsHost: spec.host || '127.0.0.1',
  wsPort: spec.port,
  wssPort: spec.port,
  forceTLS: false,
  enabledTransports: ['ws'],
  disableStats: true,
};

let pusher;
let echo = null;

// laravel-echo 2.5 ships "type": "module" with a CommonJS-style dist/echo.common.js, so
// require('laravel-echo') fails on Node 20; its ES module build loads with import().
async function createClient() {
  if (kind !== 'echo') {
    pusher = new Pusher(spec.key, { ...baseOptions, ...authOptions(), ...(spec.options || {}) });
    return;
  }
  const Echo = (await import('laravel-echo')).default;
  const echoOptions = { broadcaster: 'reverb', key: spec.key, Pusher, ...baseOptions };
  if ((spec.auth || 'local') === 'endpoint') {
    // Exactly what a Laravel app passes: Echo's own authEndpoint / userAuthentication options.
    echoOptions.authEndpoint = spec.auth_endpoint;
    echoOptions.userAuthentication = { endpoint: spec.user_auth_endpoint, headers: {} };
  } else {
    Object.assign(echoOptions, authOptions());
  }
  Object.assign(echoOptions, spec.options || {});
  echo = new Echo(echoOptions);
  pusher = echo.connector.pusher;
}

function observeClient() {
  pusher.connection.bind('state_change', (s) => out({ t: 'state', previous: s.previous, current: s.current }));
  pusher.connection.bind('connected', () => out({ t: 'connected', socket_id: pusher.connection.socket_id }));
  pusher.connection.bind('error', (e) => out({ t: 'error', error: safe(e) }));
  pusher.connection.bind('message', (m) => {
    if (m.event === 'pusher:signin_success') out({ t: 'signin_success', user_data: m.data && m.data.user_data });
  });
  pusher.user.bind_global((event, data) => out({ t: 'user_event', event, data: safe(data) }));
  pusher.user.watchlist.bind('online', (e) => out({ t: 'watchlist', name: 'online', user_ids: e.user_ids }));
  pusher.user.watchlist.bind('offline', (e) => out({ t: 'watchlist', name: 'offline', user_ids: e.user_ids }));

}

function membersSnapshot(members) {
  const all = {};
  members.each((m) => {
    all[m.id] = m.info === undefined ? null : m.info;
  });
  return { count: members.count, me: safe(members.me), members: all };
}

function describeData(data) {
  if (data && typeof data === 'object' && typeof data.each === 'function' && 'count' in data) {
    return membersSnapshot(data);
  }
  return safe(data);
}

const tapped = new WeakSet();
function tapChannel(channel) {
  if (tapped.has(channel)) return channel;
  tapped.add(channel);
  // Observe every emit (name, data and the metadata pusher-js passes to bound callbacks).
  const emit = channel.emit.bind(channel);
  channel.emit = (event, data, metadata) => {
    out({ t: 'event', channel: channel.name, event, data: describeData(data), metadata: safe(metadata) });
    return emit(event, data, metadata);
  };
  return channel;
}

// ---- Echo helpers ----------------------------------------------------------------------------

function echoChannel(type, name) {
  switch (type) {
    case 'private':
      return echo.private(name);
    case 'encrypted':
      return echo.encryptedPrivate(name);
    case 'presence':
      return echo.join(name);
    default:
      return echo.channel(name);
  }
}

function echoFullName(type, name) {
  const prefix = { private: 'private-', encrypted: 'private-encrypted-', presence: 'presence-' }[type];
  return (prefix || '') + name;
}

function setupEchoChannel(cmd) {
  const type = cmd.type || 'public';
  const full = type === 'public' ? cmd.name : echoFullName(type, cmd.name);
  const ch = echoChannel(type, cmd.name);
  ch.subscribed(() => out({ t: 'echo_subscribed', channel: full }));
  ch.error((error) => out({ t: 'echo_error', channel: full, error: safe(error) }));
  for (const name of cmd.listen || []) {
    ch.listen(name, (data) => out({ t: 'echo_event', channel: full, listen: name, data: safe(data) }));
  }
  for (const name of cmd.whispers || []) {
    ch.listenForWhisper(name, (data) => out({ t: 'echo_whisper', channel: full, name, data: safe(data) }));
  }
  if (cmd.notification) {
    ch.notification((data) => out({ t: 'echo_notification', channel: full, data: safe(data) }));
  }
  if (type === 'presence') {
    ch.here((members) => out({ t: 'echo_here', channel: full, members: safe(members) }));
    ch.joining((member) => out({ t: 'echo_joining', channel: full, member: safe(member) }));
    ch.leaving((member) => out({ t: 'echo_leaving', channel: full, member: safe(member) }));
  }
  const raw = pusher.channel(full);
  if (raw) tapChannel(raw);
  return full;
}

// ---- commands --------------------------------------------------------------------------------

let exiting = false;
function exit(code) {
  if (exiting) return;
  exiting = true;
  const open = sockets.filter((ws) => ws.readyState === 0 || ws.readyState === 1);
  try {
    pusher.disconnect();
  } catch (e) {
    // already gone
  }
  if (!open.length) {
    process.exit(code);
    return;
  }
  let pending = open.length;
  for (const ws of open) {
    ws.addEventListener('close', () => {
      pending -= 1;
      if (pending === 0) process.exit(code);
    });
  }
  setTimeout(() => process.exit(code), 1000).unref();
}

function cutSocket() {
  const open = sockets.filter((ws) => ws.readyState === 1);
  for (const ws of open) {
    // faye-websocket's client keeps its net.Socket in _stream
    if (ws._stream) ws._stream.destroy();
  }
  return open.length;
}

const handlers = {
  cut() {
    return cutSocket();
  },
  watch_numbers(cmd) {
    const channel = pusher.channel(cmd.channel);
    if (!channel) throw new Error('not subscribed: ' + cmd.channel);
    const seen = new Set();
    channel.bind(cmd.event, (data) => {
      seen.add(data && data.n);
      if (seen.size === cmd.total) out({ t: 'complete', total: cmd.total });
    });
  },
  subscribe(cmd) {
    if (cmd.bad) badChannels.add(cmd.channel);
    return tapChannel(pusher.subscribe(cmd.channel)).name;
  },
  unsubscribe(cmd) {
    pusher.unsubscribe(cmd.channel);
  },
  trigger(cmd) {
    const channel = pusher.channel(cmd.channel);
    if (!channel) throw new Error('not subscribed: ' + cmd.channel);
    return channel.trigger(cmd.event, cmd.data);
  },
  trigger_many(cmd) {
    const channel = pusher.channel(cmd.channel);
    if (!channel) throw new Error('not subscribed: ' + cmd.channel);
    let sent = 0;
    for (let i = 0; i < cmd.count; i++) {
      if (channel.trigger(cmd.event, { i })) sent += 1;
    }
    return sent;
  },
  send_event(cmd) {
    return pusher.send_event(cmd.event, cmd.data, cmd.channel);
  },
  signin() {
    pusher.signin();
  },
  connect() {
    pusher.connect();
  },
  disconnect() {
    pusher.disconnect();
  },
  state() {
    return { state: pusher.connection.state, socket_id: pusher.connection.socket_id || null };
  },
  members(cmd) {
    const channel = pusher.channel(cmd.channel);
    return channel && channel.members ? membersSnapshot(channel.members) : null;
  },
  echo_channel(cmd) {
    return setupEchoChannel(cmd);
  },
  echo_whisper(cmd) {
    echoChannel(cmd.type || 'private', cmd.name).whisper(cmd.event, cmd.data);
  },
  echo_leave(cmd) {
    echo.leave(cmd.name);
  },
  echo_signin() {
    echo.connector.signin();
  },
  exit() {
    exit(0);
  },
};

function listen() {
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (!line.trim()) return;
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (e) {
      out({ t: 'result', cmd: null, ok: false, error: 'bad JSON: ' + String(e) });
      return;
    }
    const handler = handlers[cmd.cmd];
    if (!handler) {
      out({ t: 'result', cmd: cmd.cmd, ok: false, error: 'unknown command' });
      return;
    }
    if ((cmd.cmd.startsWith('echo_') && !echo) || (kind === 'echo' && ['subscribe', 'trigger'].includes(cmd.cmd))) {
      out({ t: 'result', cmd: cmd.cmd, ok: false, error: 'command does not fit kind ' + kind });
      return;
    }
    try {
      out({ t: 'result', cmd: cmd.cmd, ok: true, value: safe(handler(cmd)) });
    } catch (e) {
      out({ t: 'result', cmd: cmd.cmd, ok: false, error: String((e && e.message) || e) });
    }
  });
  rl.on('close', () => exit(0));
}

process.on('uncaughtException', (e) => {
  out({ t: 'uncaught', error: String((e && e.stack) || e) });
});

createClient().then(
  () => {
    observeClient();
    listen();
    out({ t: 'ready', kind });
  },
  (e) => {
    out({ t: 'fatal', error: String((e && e.stack) || e) });
    process.exit(2);
  },
);
