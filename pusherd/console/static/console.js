// pusherd console: live log over Server-Sent Events, channels, members, event creator, stats.
'use strict';

const $ = (id) => document.getElementById(id);
const MAX_LINES = 1000;
const state = { app: null, csrf: '', source: null, paused: false, held: [], heldSkipped: 0, skipped: 0, channel: null };

async function getJson(path) {
  const response = await fetch(path, { credentials: 'same-origin' });
  if (response.status === 401) { location.href = 'login'; throw new Error('logged out'); }
  if (!response.ok) throw new Error((await response.json()).error || response.statusText);
  return response.json();
}

function text(value) { return value === null || value === undefined ? '' : String(value); }

function summary(line) {
  switch (line.type) {
    case 'socket_opened':
      return `socket ${line.socket_id} opened · ${text(line.client)} ${text(line.version)} · origin ${text(line.origin) || '-'} · from ${text(line.remote) || '-'}`;
    case 'socket_closed':
      return `socket ${line.socket_id} closed · code ${line.code} ${text(line.reason)} · lived ${line.lived}s`;
    case 'subscribed': return `${line.socket_id} subscribed to ${line.channel}`;
    case 'unsubscribed': return `${line.socket_id} left ${line.channel}`;
    case 'refused': return `${line.socket_id} refused on ${line.channel}: ${line.reason} (${line.status})`;
    case 'occupied': return `${line.channel} occupied`;
    case 'vacated': return `${line.channel} vacated`;
    case 'member_added': return `${line.user_id} joined ${line.channel}`;
    case 'member_removed': return `${line.user_id} left ${line.channel}`;
    case 'client_event': return `${line.event} on ${line.channel} from ${line.socket_id}${line.user_id ? ' (user ' + line.user_id + ')' : ''} · ${line.size} B`;
    case 'api_message': return `${line.event} on ${line.channel} · ${line.size} B${line.socket_id ? ' · except ' + line.socket_id : ''}`;
    case 'webhook': return `${(line.events || []).join(', ')} → ${line.target} · ${line.status === null ? 'no answer' : 'HTTP ' + line.status} · ${line.ms} ms · attempt ${line.attempt} · ${line.outcome}`;
    case 'cache_miss': return `cache miss on ${line.channel}`;
    case 'slow_consumer': return `socket ${line.socket_id} cut off: ${line.unsent} bytes unsent`;
    case 'skipped': return `${line.count} lines skipped on node ${text(line.node)} (too fast to show)`;
    default: return JSON.stringify(line);
  }
}

function matches(li) {
  const channel = $('f-channel').value.trim();
  const eventName = $('f-event').value.trim();
  const type = $('f-type').value;
  const needle = $('f-text').value.trim().toLowerCase();
  const d = li.dataset;
  if (channel && !(d.channel || '').startsWith(channel)) return false;
  if (eventName && !(d.event || '').includes(eventName)) return false;
  if (type && d.type !== type) return false;
  if (needle && !li.textContent.toLowerCase().includes(needle) && !(d.raw || '').toLowerCase().includes(needle)) return false;
  return true;
}

function refilter() {
  for (const li of $('log').children) li.classList.toggle('hidden', !matches(li));
}

function render(line) {
  const li = document.createElement('li');
  li.dataset.type = line.type;
  if (line.channel) li.dataset.channel = line.channel;
  if (line.event) li.dataset.event = line.event;
  li.dataset.raw = JSON.stringify(line);
  const time = document.createElement('span');
  time.className = 'time';
  time.textContent = line.t ? new Date(line.t).toISOString().slice(11, 23) : '';
  const badge = document.createElement('span');
  badge.className = 'type t-' + line.type + (line.type === 'webhook' && line.outcome !== 'sent' ? ' bad' : '');
  badge.textContent = line.type.replace('_', ' ');
  const body = document.createElement('span');
  body.className = 'summary';
  body.textContent = summary(line);
  const node = document.createElement('span');
  node.className = 'node';
  node.textContent = line.node ? '@' + line.node : '';
  li.append(time, badge, body, node);
  li.addEventListener('click', () => {
    li.classList.toggle('open');
    let pre = li.querySelector('pre');
    if (li.classList.contains('open') && !pre) {
      pre = document.createElement('pre');
      let shown = line;
      if (line.data !== undefined) {
        try { shown = { ...line, data: JSON.parse(line.data) }; } catch (e) { shown = line; }
      }
      pre.textContent = JSON.stringify(shown, null, 2) + (line.truncated ? '\n(data truncated)' : '');
      li.append(pre);
    } else if (pre && !li.classList.contains('open')) {
      pre.remove();
    }
  });
  li.classList.toggle('hidden', !matches(li));
  return li;
}

function add(lines) {
  if (state.paused) {
    for (const line of lines) {
      if (state.held.length < MAX_LINES) state.held.push(line); else state.heldSkipped += 1;
    }
    return;
  }
  const log = $('log');
  const fragment = document.createDocumentFragment();
  for (let i = lines.length - 1; i >= 0; i--) fragment.append(render(lines[i]));
  log.prepend(fragment);
  while (log.children.length > MAX_LINES) log.lastChild.remove();
  if (lines.some((l) => l.type !== 'socket_opened' && l.type !== 'socket_closed')) scheduleChannels();
}

function skipped(count) {
  state.skipped += count;
  const box = $('skipped');
  box.hidden = false;
  box.textContent = `${state.skipped} lines skipped (more traffic than the speed setting shows)`;
}

function openStream() {
  if (state.source) state.source.close();
  const rate = $('rate').value;
  const since = state.lastId ? `&since=${state.lastId}` : '';
  const source = new EventSource(`api/apps/${encodeURIComponent(state.app)}/stream?rate=${rate}${since}`);
  state.source = source;
  source.onopen = () => { $('conn').dataset.state = state.paused ? 'paused' : 'live'; $('conn').textContent = state.paused ? 'paused' : 'live'; };
  source.onerror = () => { $('conn').dataset.state = 'connecting'; $('conn').textContent = 'reconnecting'; };
  source.addEventListener('lines', (e) => { state.lastId = e.lastEventId; add(JSON.parse(e.data)); });
  source.addEventListener('skipped', (e) => skipped(JSON.parse(e.data).count));
}

let channelsTimer = null;
function scheduleChannels() {
  if (channelsTimer) return;
  channelsTimer = setTimeout(() => { channelsTimer = null; refreshChannels(); }, 300);
}

async function refreshChannels() {
  if (!state.app) return;
  const prefix = $('c-prefix').value.trim();
  const data = await getJson(`api/apps/${encodeURIComponent(state.app)}/channels?prefix=${encodeURIComponent(prefix)}`);
  const list = $('channels');
  list.replaceChildren();
  const names = Object.keys(data.channels);
  $('channel-count').textContent = `(${names.length})`;
  for (const name of names) {
    const info = data.channels[name];
    const li = document.createElement('li');
    li.dataset.channel = name;
    li.dataset.subscriptions = info.subscription_count;
    if (info.user_count !== undefined) li.dataset.users = info.user_count;
    if (name === state.channel) li.classList.add('selected');
    const label = document.createElement('span');
    label.textContent = name;
    const count = document.createElement('span');
    count.className = 'muted';
    count.textContent = info.user_count !== undefined ? `${info.user_count} users · ${info.subscription_count} subs` : `${info.subscription_count} subs`;
    li.append(label, count);
    li.addEventListener('click', () => selectChannel(name));
    list.append(li);
  }
  if (state.channel && state.channel.startsWith('presence-')) refreshMembers();
}

function selectChannel(name) {
  state.channel = state.channel === name ? null : name;
  $('f-channel').value = state.channel || '';
  refilter();
  for (const li of $('channels').children) li.classList.toggle('selected', li.dataset.channel === state.channel);
  if (state.channel && state.channel.startsWith('presence-')) refreshMembers(); else $('members-panel').hidden = true;
}

async function refreshMembers() {
  const channel = state.channel;
  const data = await getJson(`api/apps/${encodeURIComponent(state.app)}/channels/${encodeURIComponent(channel)}/members`);
  $('members-panel').hidden = false;
  $('members-channel').textContent = channel;
  const list = $('members');
  list.replaceChildren();
  for (const member of data.members) {
    const li = document.createElement('li');
    li.dataset.userId = member.user_id;
    li.textContent = member.user_id + (member.user_info === null || member.user_info === undefined ? '' : ' ' + JSON.stringify(member.user_info));
    list.append(li);
  }
}

async function sendEvent(e) {
  e.preventDefault();
  const dataBox = $('ev-data');
  const result = $('ev-result');
  try { JSON.parse(dataBox.value); dataBox.classList.remove('invalid'); } catch (err) {
    dataBox.classList.add('invalid');
    result.textContent = 'Data is not valid JSON: ' + err.message;
    result.dataset.state = 'invalid';
    return;
  }
  const body = { channels: $('ev-channels').value, name: $('ev-name').value.trim(), data: dataBox.value };
  if ($('ev-socket').value.trim()) body.socket_id = $('ev-socket').value.trim();
  const response = await fetch(`api/apps/${encodeURIComponent(state.app)}/events`, {
    method: 'POST', credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-csrf-token': state.csrf },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  result.dataset.state = response.ok ? 'sent' : 'error';
  result.textContent = response.ok ? `Sent to ${answer.channels.join(', ')}` : `Refused (${response.status}): ${answer.error}`;
}

// ---- stats: hand-drawn canvas line charts -------------------------------------------------
const CHARTS = [
  ['connections', 'connections', false],
  ['delivered', 'messages delivered/s', true],
  ['api_messages', 'API publishes/s', true],
  ['client_events', 'client events/s', true],
  ['webhook_failures', 'webhook failures / 5 s', 'count'],
  ['peak', 'peak connections per minute', 'peak'],
];

function series(history, key, mode) {
  if (!mode) return history.map((p) => p[key]);
  if (mode === 'peak') {
    const minutes = new Map();
    for (const p of history) {
      const minute = Math.floor(p.t / 60000);
      minutes.set(minute, Math.max(minutes.get(minute) || 0, p.connections));
    }
    return [...minutes.values()];
  }
  const out = [];
  for (let i = 1; i < history.length; i++) {
    const delta = Math.max(0, history[i][key] - history[i - 1][key]);
    const seconds = Math.max(0.001, (history[i].t - history[i - 1].t) / 1000);
    out.push(mode === 'count' ? delta : delta / seconds);
  }
  return out;
}

function drawBars(canvas, values) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 320;
  const height = canvas.clientHeight || 46;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const ctx = canvas.getContext('2d');
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  const max = Math.max(1, ...values);
  const slot = width / 60;
  values.slice(-60).forEach((v, i) => {
    const h = (v / max) * (height - 6);
    ctx.fillStyle = '#3056d3';
    ctx.fillRect(i * slot + 1, height - h, Math.max(1, slot - 2), h);
  });
}

function draw(canvas, values) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 320;
  const height = canvas.clientHeight || 46;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const ctx = canvas.getContext('2d');
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  if (!values.length) return;
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? width / (values.length - 1) : width;
  ctx.beginPath();
  values.forEach((v, i) => {
    const x = i * step;
    const y = height - 3 - (v / max) * (height - 8);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.strokeStyle = '#3056d3';
  ctx.lineWidth = 1.5;
  ctx.stroke();
  ctx.lineTo((values.length - 1) * step, height);
  ctx.lineTo(0, height);
  ctx.closePath();
  ctx.fillStyle = 'rgba(48, 86, 211, 0.12)';
  ctx.fill();
}

function buildCharts() {
  const box = $('charts');
  box.replaceChildren();
  for (const [key, label] of CHARTS) {
    const chart = document.createElement('div');
    chart.className = 'chart';
    chart.dataset.figure = key;
    chart.innerHTML = `<div class="label"><span>${label}</span><span class="value">–</span></div><canvas></canvas>`;
    box.append(chart);
  }
}

async function refreshStats() {
  if (!state.app) return;
  const data = await getJson(`api/apps/${encodeURIComponent(state.app)}/stats`);
  const history = [...data.history, data.now];
  for (const [key, , mode] of CHARTS) {
    const chart = document.querySelector(`.chart[data-figure="${key}"]`);
    const values = series(history, key, mode);
    (mode === 'peak' ? drawBars : draw)(chart.querySelector('canvas'), values);
    const last = values.length ? values[values.length - 1] : 0;
    let shown = mode === true ? last.toFixed(1) : String(Math.round(last));
    if (key === 'connections') shown += ` · ${data.now.nodes.length} node(s)`;
    chart.querySelector('.value').textContent = shown;
    chart.dataset.value = String(last);
  }
}

// ---- wiring -------------------------------------------------------------------------------
function openApp(id) {
  state.app = id;
  state.lastId = '';
  state.channel = null;
  state.skipped = 0;
  $('skipped').hidden = true;
  $('log').replaceChildren();
  $('members-panel').hidden = true;
  openStream();
  refreshChannels();
  refreshStats();
}

async function boot() {
  const session = await getJson('api/session');
  state.csrf = session.csrf;
  $('logout-csrf').value = session.csrf;
  $('node').textContent = `node ${session.node} · ${session.driver}`;
  for (const type of session.types) {
    const option = document.createElement('option');
    option.value = type;
    option.textContent = type.replace('_', ' ');
    $('f-type').append(option);
  }
  const apps = await getJson('api/apps');
  for (const app of apps) {
    const option = document.createElement('option');
    option.value = app.id;
    option.textContent = `${app.id} (${app.key})`;
    $('app').append(option);
  }
  buildCharts();
  $('app').addEventListener('change', () => openApp($('app').value));
  for (const id of ['f-channel', 'f-event', 'f-text', 'f-type']) $(id).addEventListener('input', refilter);
  $('c-prefix').addEventListener('input', scheduleChannels);
  $('pause').addEventListener('click', () => {
    state.paused = !state.paused;
    $('pause').textContent = state.paused ? 'Resume' : 'Pause';
    $('conn').dataset.state = state.paused ? 'paused' : 'live';
    $('conn').textContent = state.paused ? 'paused' : 'live';
    if (!state.paused) {
      const held = state.held;
      state.held = [];
      if (state.heldSkipped) { skipped(state.heldSkipped); state.heldSkipped = 0; }
      add(held);
    }
  });
  $('clear').addEventListener('click', () => $('log').replaceChildren());
  $('rate').addEventListener('input', () => { $('rate-value').textContent = $('rate').value; });
  $('rate').addEventListener('change', openStream);
  $('creator').addEventListener('submit', sendEvent);
  setInterval(refreshStats, 5000);
  setInterval(refreshChannels, 10000);
  if (apps.length) openApp(apps[0].id);
  document.body.dataset.ready = '1';
}

boot();
