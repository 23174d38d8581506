// relay-console's page: renders the snapshots of /api/stream, places
// orders through /api/orders and follows one order's timeline through
// /api/orders/ID/stream. Plain DOM, no framework, no build step. Every
// value from the server goes in through textContent, never as HTML.
'use strict';

const $ = (selector) => document.querySelector(selector);
const SVG = 'http://www.w3.org/2000/svg';

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function td(value, cls) {
  return el('td', cls ? { className: cls } : {}, value === undefined || value === '' ? '-' : value);
}

function fillTable(selector, rows) {
  const body = $(selector + ' tbody');
  body.replaceChildren(...rows);
}

function money(m) {
  if (!m || m.currency === '') return '-';
  return (Number(m.amount_minor) / 100).toFixed(2) + ' ' + m.currency;
}

const statusName = (s) => (s || '').replace('ORDER_STATUS_', '');
function causeName(c) {
  const name = (c || '').replace('CANCEL_CAUSE_', '').toLowerCase();
  return name === 'unspecified' ? '' : name;
}
const time = (t) => (t ? t.replace('T', ' ').replace(/\.(\d{3})\d*Z$/, '.$1') : '-');
const rate = (r) => (r >= 100 ? r.toFixed(0) : r.toFixed(1));
const count = (n) => Number(n).toLocaleString('en');

// ---- The snapshot: peers, diagram, groups, stock, balances, dead letters.

let overview = null;

function renderPeers() {
  const peers = overview.peers || [];
  $('#peers').replaceChildren(...peers.map((p) =>
    el('li', { className: p.ok ? 'ok' : 'down', title: p.ok ? p.address : p.error }, p.name)));
  const down = peers.filter((p) => !p.ok);
  const banner = $('#unreachable');
  banner.hidden = down.length === 0;
  banner.textContent = down.map((p) => p.error).join(' · ');
  $('#updated').textContent = 'updated ' + time(overview.time);
}

function renderDiagram() {
  const topics = (overview.topics || []).filter((t) => !t.dead_letter || Number(t.events) > 0);
  const groups = (overview.groups || []).filter((g) => topics.some((t) => t.name === g.topic));
  const producers = [...new Set(topics.flatMap((t) => t.producers))].sort();
  const area = $('#diagram');
  const width = Math.max(area.clientWidth, 700);
  const rowHeight = 46;
  const rows = Math.max(producers.length, topics.length, groups.length, 1);
  const height = rows * rowHeight + 20;
  area.setAttribute('viewBox', `0 0 ${width} ${height}`);
  area.style.height = height + 'px';
  const nodeWidth = 200;
  const nodeHeight = 34;
  const columns = [16, width * 0.38 - nodeWidth / 2, width - nodeWidth - 16];
  const place = (items, column) => {
    const top = (height - items.length * rowHeight) / 2 + 6;
    return new Map(items.map((key, i) => [key, { x: columns[column], y: top + i * rowHeight }]));
  };
  const at = {
    producer: place(producers, 0),
    topic: place(topics.map((t) => t.name), 1),
    group: place(groups.map((g) => g.topic + '/' + g.group), 2),
  };
  const nodes = [];
  const edges = [];
  const edge = (from, to, active, label, lag) => {
    const x1 = from.x + nodeWidth;
    const y1 = from.y + nodeHeight / 2;
    const x2 = to.x;
    const y2 = to.y + nodeHeight / 2;
    const mid = (x1 + x2) / 2;
    edges.push(svg('path', { d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
                             class: active ? 'active' : '' }));
    if (label) {
      edges.push(svg('text', { x: x2 - 8, y: y2 - 5, 'text-anchor': 'end',
                               class: 'edge-label' + (lag ? ' lag' : '') }, label));
    }
  };
  const node = (pos, cls, title, detail) => {
    const g = svg('g', { class: 'node ' + cls, transform: `translate(${pos.x},${pos.y})` });
    g.append(svg('rect', { width: nodeWidth, height: nodeHeight }));
    g.append(svg('text', { x: 8, y: 14 }, title));
    g.append(svg('text', { x: 8, y: 28, class: 'small' }, detail));
    nodes.push(g);
  };
  for (const p of producers) node(at.producer.get(p), 'producer', p, 'producer');
  for (const t of topics) {
    const pos = at.topic.get(t.name);
    node(pos, t.dead_letter ? 'topic dlq' : 'topic', t.name,
         `${rate(t.events_per_s)} ev/s · ${count(t.end_offset)} events`);
    for (const p of t.producers) edge(at.producer.get(p), pos, t.events_per_s > 0);
  }
  for (const g of groups) {
    const pos = at.group.get(g.topic + '/' + g.group);
    const lag = Number(g.lag);
    const members = (g.members || []).length;
    node(pos, 'group' + (lag > 0 ? ' lagging' : ''), g.group,
         `${members} member${members === 1 ? '' : 's'} · ${count(g.in_flight)} in flight`);
    edge(at.topic.get(g.topic), pos, g.acks_per_s > 0,
         `${rate(g.acks_per_s)}/s · lag ${count(lag)}`, lag > 0);
  }
  area.replaceChildren(...edges, ...nodes);
}

function renderTables() {
  fillTable('#groups', (overview.groups || []).map((g) => el('tr', {},
    td(g.topic), td(g.group),
    td((g.members || []).map((m) => m.member_name || m.member_id).join(', ') || 'none'),
    td(count(g.committed_offset), 'num'), td(count(g.lag), 'num'), td(count(g.in_flight), 'num'),
    td(count(g.waiting_retry), 'num'), td(count(g.redelivered), 'num'),
    td(count(g.dead_lettered), 'num'), td(rate(g.acks_per_s), 'num'))));
  fillTable('#stock', (overview.products || []).map((p) => el('tr', {},
    td(p.sku), td(p.name), td(money(p.price), 'num'), td(count(p.on_hand), 'num'),
    td(count(p.reserved), 'num'), td(count(p.available), 'num'))));
  fillTable('#balances', (overview.accounts || []).map((a) => el('tr', {},
    td(a.customer_id), td(a.name), td(money(a.balance), 'num'))));
  fillTable('#dead-letters', (overview.dead_letters || []).map((e) => {
    const dl = e.payload || {};
    const inner = dl.event || {};
    return el('tr', {}, td(time(e.publish_time)), td(e.topic), td(dl.group),
              td(`${inner.type || '?'} ${inner.topic || ''}@${inner.offset || 0}`),
              td((dl.attempts || []).length, 'num'), td(dl.last_error, 'wrap'));
  }));
}

// Keeps the form's choices in step with the catalog, without resetting
// what the user picked.
function renderChoices() {
  const customer = $('#customer');
  const accounts = overview.accounts || [];
  const wanted = accounts.map((a) => a.customer_id).join();
  if (customer.dataset.ids !== wanted) {
    const chosen = customer.value;
    customer.replaceChildren(...accounts.map((a) =>
      el('option', { value: a.customer_id }, `${a.customer_id} (${money(a.balance)})`)));
    if (accounts.some((a) => a.customer_id === chosen)) customer.value = chosen;
    customer.dataset.ids = wanted;
  } else {
    accounts.forEach((a, i) => {
      customer.options[i].textContent = `${a.customer_id} (${money(a.balance)})`;
    });
  }
  for (const select of document.querySelectorAll('#items select')) fillSkus(select);
  if ($('#items').children.length === 0 && (overview.products || []).length > 0) addItem();
}

function fillSkus(select) {
  const products = overview ? overview.products || [] : [];
  const chosen = select.value;
  select.replaceChildren(...products.map((p) =>
    el('option', { value: p.sku }, `${p.sku} ${p.name} (${count(p.available)} left)`)));
  if (products.some((p) => p.sku === chosen)) select.value = chosen;
}

function addItem() {
  const select = el('select', { className: 'sku', required: true });
  fillSkus(select);
  const quantity = el('input', { className: 'quantity', type: 'number', min: 1, max: 1000000,
                                 value: 1, required: true });
  const remove = el('button', { type: 'button', title: 'remove' }, '×');
  const row = el('div', { className: 'item' }, select, quantity, remove);
  remove.addEventListener('click', () => row.remove());
  $('#items').append(row);
}

function connectOverview() {
  const source = new EventSource('/api/stream');
  source.addEventListener('overview', (message) => {
    overview = JSON.parse(message.data);
    renderPeers();
    renderDiagram();
    renderTables();
    renderChoices();
    refreshOrders();
  });
  // The browser reconnects by itself after a dropped connection, but not
  // after an answer other than 200 (a 503 when every stream slot is taken):
  // then this does, a few seconds later.
  source.onerror = () => {
    $('#updated').textContent = 'console unreachable, reconnecting';
    if (source.readyState === EventSource.CLOSED) setTimeout(connectOverview, 3000);
  };
}

// ---- Orders.

async function refreshOrders() {
  const filter = $('#status-filter').value;
  try {
    const response = await fetch(`/api/orders?status=${filter}&limit=20`);
    const doc = await response.json();
    if (!response.ok) throw new Error(doc.error || response.statusText);
    $('#orders-error').textContent = '';
    fillTable('#orders', (doc.orders || []).map((o) => {
      const row = el('tr', {}, td(o.order_id), td(o.customer_id),
        td((o.lines || []).map((l) => `${l.sku}×${l.quantity}`).join(' ')),
        td(money(o.total), 'num'), td(el('span', { className: 'badge ' + statusName(o.status) },
                                          statusName(o.status))),
        td(causeName(o.cancel_cause)), td(time(o.created_at)));
      row.addEventListener('click', () => follow(o.order_id));
      return row;
    }));
  } catch (error) {
    $('#orders-error').textContent = String(error.message || error);
  }
}

let orderStream = null;
let shownEvents = 0;

function renderOrder(doc) {
  const order = doc.order;
  $('#order-id').textContent = order.order_id;
  const status = statusName(order.status);
  const badge = $('#order-status');
  badge.textContent = status;
  badge.className = 'badge ' + status;
  const cause = causeName(order.cancel_cause);
  $('#order-reason').textContent = cause ? `${cause}: ${order.cancel_reason}` : '';
  const events = (doc.trace && doc.trace.events) || [];
  fillTable('#timeline', events.map((e, i) => el('tr', { className: i >= shownEvents ? 'new' : '' },
    td(time(e.publish_time)), td(i === 0 ? '-' : e.since_previous_ms.toFixed(1) + 'ms', 'num'),
    td(e.topic), td(e.offset, 'num'), td(e.type), td(e.source),
    td((e.acked_by || []).join(', ')), td(e.summary, 'wrap'))));
  shownEvents = events.length;
  $('#trace-error').textContent = doc.trace_error || '';
}

function follow(orderId) {
  if (orderStream) orderStream.close();
  shownEvents = 0;
  fillTable('#timeline', []);
  const source = new EventSource(`/api/orders/${encodeURIComponent(orderId)}/stream`);
  orderStream = source;
  source.addEventListener('order', (message) => renderOrder(JSON.parse(message.data)));
  source.addEventListener('end', () => source.close());
  source.onerror = async () => {
    // A stream the server refused or ended: show the order once, do not loop.
    source.close();
    try {
      const response = await fetch(`/api/orders/${encodeURIComponent(orderId)}`);
      const doc = await response.json();
      if (orderStream !== source) return;  // another order was picked meanwhile
      if (response.ok) renderOrder(doc); else $('#trace-error').textContent = doc.error;
    } catch (error) {
      $('#trace-error').textContent = String(error.message || error);
    }
  };
}

function newKey() {
  if (window.crypto && crypto.randomUUID) return 'console-' + crypto.randomUUID();
  return 'console-' + Date.now() + '-' + Math.random().toString(16).slice(2);
}

async function placeOrder(submit) {
  submit.preventDefault();
  const items = [...document.querySelectorAll('#items .item')].map((row) => ({
    sku: row.querySelector('.sku').value,
    quantity: Number(row.querySelector('.quantity').value),
  }));
  const request = { customer_id: $('#customer').value, items, idempotency_key: newKey() };
  $('#form-error').textContent = '';
  $('#place').disabled = true;
  try {
    const response = await fetch('/api/orders', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(request),
    });
    const doc = await response.json();
    if (!response.ok) throw new Error(doc.error || response.statusText);
    renderOrder({ order: doc.order, trace: { events: [] } });
    follow(doc.order.order_id);
  } catch (error) {
    $('#form-error').textContent = String(error.message || error);
  } finally {
    $('#place').disabled = false;
  }
}

$('#add-item').addEventListener('click', addItem);
$('#order-form').addEventListener('submit', placeOrder);
$('#status-filter').addEventListener('change', refreshOrders);
connectOverview();
