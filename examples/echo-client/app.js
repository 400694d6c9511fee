// Laravel Echo talking to pusherd exactly as it talks to Laravel Reverb.
//
// The options are the ones a Laravel app puts in resources/js/echo.js; only the values
// (read from /config.json, i.e. the backend's REVERB_* settings) point at pusherd.
'use strict';

(async function main() {
  const params = new URLSearchParams(window.location.search);
  const name = (params.get('user') || 'guest-' + Math.random().toString(36).slice(2, 6)).trim();
  const config = await (await fetch('/config.json')).json();

  const $ = (id) => document.getElementById(id);
  $('me').textContent = name;
  $('channel-name').textContent = 'presence-' + config.channel;

  // window.Echo is the IIFE build's namespace; its default export is the Echo class.
  const EchoClass = window.Echo.default;
  const echo = new EchoClass({
    broadcaster: 'reverb',
    key: config.key,
    wsHost: config.wsHost,
    wsPort: config.wsPort,
    wssPort: config.wsPort,
    forceTLS: config.scheme === 'https',
    enabledTransports: ['ws', 'wss'],
    // Laravel identifies the user by the session cookie; this example passes the name
    // along so that two tabs of one browser can be two different users.
    authEndpoint: '/broadcasting/auth?user=' + encodeURIComponent(name),
  });
  window.echo = echo;

  // Connection state, straight from pusher-js.
  const status = $('status');
  const showState = (state) => {
    status.dataset.state = state;
    status.textContent = state;
  };
  echo.connector.pusher.connection.bind('state_change', (states) => showState(states.current));
  showState(echo.connector.pusher.connection.state);

  // Who is online: here() gives the initial list, joining()/leaving() the changes.
  const members = new Map();
  const renderMembers = () => {
    const list = $('members');
    list.replaceChildren();
    const sorted = [...members.values()].sort((a, b) => a.name.localeCompare(b.name));
    for (const user of sorted) {
      const item = document.createElement('li');
      item.dataset.userId = user.id;
      const avatar = document.createElement('span');
      avatar.className = 'avatar';
      avatar.style.background = colorFor(user.id);
      avatar.textContent = user.name.slice(0, 1).toUpperCase();
      const label = document.createElement('span');
      label.className = 'name';
      label.textContent = user.name;
      item.append(avatar, label);
      if (user.name === name) {
        const me = document.createElement('span');
        me.className = 'me';
        me.textContent = '(you)';
        item.append(me);
      }
      list.append(item);
    }
    $('online-count').textContent = String(members.size);
  };

  // Events published by the backend (Laravel would broadcast App\Events\MessagePosted).
  const addMessage = (text, meta) => {
    const list = $('messages');
    list.querySelector('.empty')?.remove();
    const item = document.createElement('li');
    item.className = 'message';
    const body = document.createElement('div');
    body.className = 'text';
    body.textContent = text;
    const small = document.createElement('div');
    small.className = 'meta';
    small.textContent = meta;
    item.append(body, small);
    list.append(item);
    list.scrollTop = list.scrollHeight;
  };

  // Whispers are client events: they go from browser to browser without the backend.
  let typingTimer = null;
  const showTyping = (who) => {
    $('typing').textContent = who + ' is typing…';
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => { $('typing').textContent = ''; }, 3000);
  };

  const channel = echo.join(config.channel)
    .here((users) => {
      members.clear();
      for (const user of users) members.set(user.id, user);
      renderMembers();
    })
    .joining((user) => { members.set(user.id, user); renderMembers(); })
    .leaving((user) => { members.delete(user.id); renderMembers(); })
    .listen('MessagePosted', (event) => {
      const time = new Date(event.sent_at * 1000).toLocaleTimeString();
      addMessage(event.message, 'MessagePosted from ' + event.user + ' at ' + time);
    })
    .listenForWhisper('typing', (event) => showTyping(event.name))
    .error((error) => addMessage('Could not join: ' + JSON.stringify(error), 'error'));

  let lastWhisper = 0;
  $('message').addEventListener('input', () => {
    const now = Date.now();
    if (now - lastWhisper > 1000) {
      lastWhisper = now;
      channel.whisper('typing', { name });
    }
  });

  $('compose').addEventListener('submit', async (event) => {
    event.preventDefault();
    const input = $('message');
    const message = input.value.trim();
    if (!message) return;
    input.value = '';
    const response = await fetch('/trigger', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Socket-ID': echo.socketId() || '' },
      body: JSON.stringify({ message, user: name }),
    });
    if (!response.ok) addMessage('Trigger failed: HTTP ' + response.status, 'error');
  });

  function colorFor(id) {
    let hash = 0;
    for (const ch of String(id)) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
    return 'hsl(' + (hash % 360) + ', 55%, 50%)';
  }
})();
