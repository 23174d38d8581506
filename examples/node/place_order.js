#!/usr/bin/env node
// Relay from Node.js: list the catalog, place an order, watch it end.
//
//   npm ci && node place_order.js [--customer c-alice] [--item KB-1:1 ...]
//
// Talks to inventory-service (ListProducts) and order-service (PlaceOrder,
// WatchOrder) over gRPC with @grpc/grpc-js; @grpc/proto-loader reads
// ../../protos at start-up, so there is no generated code. Over TLS with
// --tls-ca (and mutual TLS with --tls-cert and --tls-key, as the compose
// stack needs: scripts/pki-export), else plaintext. Exit codes follow
// relayctl's: 0 CONFIRMED, 1 error (the service refused, or still PENDING
// after --wait-timeout), 2 usage, 4 a service unreachable or silent,
// 5 CANCELLED.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');

const EXIT = { OK: 0, ERROR: 1, USAGE: 2, NOT_FOUND: 3, UNAVAILABLE: 4, CANCELLED: 5 };
const PROG = 'place_order';
const PROTOS = path.resolve(__dirname, '..', '..', 'protos');

function fail(code, message) {
  process.stderr.write(`${PROG}: ${message}\n`);
  process.exit(code);
}

// At most `limit` characters of text that may come from the user.
function excerpt(text, limit = 40) {
  text = String(text);
  return text.length <= limit ? text : `${text.slice(0, limit)}...`;
}

let grpc;
let protoLoader;
try {
  grpc = require('@grpc/grpc-js');
  protoLoader = require('@grpc/proto-loader');
} catch (err) {
  fail(EXIT.ERROR, `${excerpt(err.message, 120)}: run npm ci in ${__dirname} first`);
}

const USAGE = `Usage: node place_order.js [flags]

Lists Relay's catalog, places an order and watches it until it is CONFIRMED
(exit 0) or CANCELLED (exit 5).

  --order-addr HOST:PORT      order-service (env RELAY_ORDER_ADDR, default 127.0.0.1:7071)
  --inventory-addr HOST:PORT  inventory-service (env RELAY_INVENTORY_ADDR, default 127.0.0.1:7072)
  --customer ID               customer id (default c-alice)
  --item SKU:QTY              an item; repeat for more (default KB-1:1)
  --key KEY                   idempotency key (default: a new one, so every run is a new order)
  --tls-cert FILE             PEM client certificate, for mutual TLS; with --tls-key
                              (env RELAY_TLS_CERT)
  --tls-key FILE              PEM private key of --tls-cert (env RELAY_TLS_KEY)
  --tls-ca FILE               PEM CA that the services' certificates chain to (env
                              RELAY_TLS_CA; default: the system's CAs when a client
                              certificate is given, else plaintext)
  --timeout SECONDS           deadline of each call (default 10)
  --wait-timeout SECONDS      how long to watch for CONFIRMED or CANCELLED (default 60)
  -h, --help                  this help
`;

function usageError(message) {
  fail(EXIT.USAGE, `${excerpt(message, 200)} (see --help)`);
}

function parseItem(text) {
  const colon = text.lastIndexOf(':');
  if (colon <= 0) usageError(`--item "${excerpt(text)}": expected SKU:QTY, e.g. KB-1:2`);
  const qty = text.slice(colon + 1);
  if (!/^[0-9]{1,7}$/.test(qty) || Number(qty) < 1 || Number(qty) > 1000000) {
    usageError(`--item "${excerpt(text)}": the quantity must be a whole number from 1 to 1000000`);
  }
  return { sku: text.slice(0, colon), quantity: Number(qty) };
}

function parseSeconds(flag, text) {
  const value = /^[0-9]+(\.[0-9]+)?$/.test(text) ? Number(text) : 0;
  if (!(value > 0 && value <= 3600)) {
    usageError(`--${flag} "${excerpt(text)}": expected seconds in (0, 3600]`);
  }
  return value;
}

function parseFlags() {
  let values;
  try {
    ({ values } = parseArgs({
      strict: true,
      allowPositionals: false,
      options: {
        'order-addr': {
          type: 'string', default: process.env.RELAY_ORDER_ADDR || '127.0.0.1:7071',
        },
        'inventory-addr': {
          type: 'string', default: process.env.RELAY_INVENTORY_ADDR || '127.0.0.1:7072',
        },
        customer: { type: 'string', default: 'c-alice' },
        item: { type: 'string', multiple: true, default: ['KB-1:1'] },
        key: { type: 'string', default: '' },
        'tls-cert': { type: 'string', default: process.env.RELAY_TLS_CERT || '' },
        'tls-key': { type: 'string', default: process.env.RELAY_TLS_KEY || '' },
        'tls-ca': { type: 'string', default: process.env.RELAY_TLS_CA || '' },
        timeout: { type: 'string', default: '10' },
        'wait-timeout': { type: 'string', default: '60' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    usageError(err.message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(EXIT.OK);
  }
  if (Boolean(values['tls-cert']) !== Boolean(values['tls-key'])) {
    usageError('--tls-cert and --tls-key go together');
  }
  return {
    orderAddr: values['order-addr'],
    inventoryAddr: values['inventory-addr'],
    customer: values.customer,
    items: values.item.map(parseItem),
    key: values.key || `js-${crypto.randomUUID()}`,
    timeout: parseSeconds('timeout', values.timeout),
    waitTimeout: parseSeconds('wait-timeout', values['wait-timeout']),
    tlsCert: values['tls-cert'],
    tlsKey: values['tls-key'],
    tlsCa: values['tls-ca'],
  };
}

function readPem(flag, file) {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    return fail(EXIT.USAGE, `--${flag} ${excerpt(file, 120)}: ${excerpt(err.message, 200)}`);
  }
}

// TLS credentials from the --tls-* files; plaintext without any.
function channelCredentials(opts) {
  if (!opts.tlsCert && !opts.tlsCa) return grpc.credentials.createInsecure();
  // grpc-js sends the target's host as the TLS server name (SNI) even when
  // it is an IP address, such as 127.0.0.1, and Node warns about that on
  // stderr (DEP0123). The server ignores the name, and the certificate is
  // still checked against the address: that one warning is dropped.
  const emitWarning = process.emitWarning.bind(process);
  process.emitWarning = (warning, ...rest) => {
    if (rest.includes('DEP0123') || (rest[0] && rest[0].code === 'DEP0123')) return;
    emitWarning(warning, ...rest);
  };
  return grpc.credentials.createSsl(
    opts.tlsCa ? readPem('tls-ca', opts.tlsCa) : null,
    opts.tlsKey ? readPem('tls-key', opts.tlsKey) : null,
    opts.tlsCert ? readPem('tls-cert', opts.tlsCert) : null,
  );
}

// Currencies whose minor unit is not a hundredth (as relayctl's money.cc).
const ZERO_DIGITS = new Set(['BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF', 'KRW', 'PYG',
  'RWF', 'UGX', 'VND', 'VUV', 'XAF', 'XOF', 'XPF']);
const THREE_DIGITS = new Set(['BHD', 'IQD', 'JOD', 'KWD', 'LYD', 'OMR', 'TND']);

// Money in minor units as text, e.g. 8900 USD -> '89.00 USD'. int64 arrives
// as a string (longs: String) and is computed with BigInt, never a float.
function money(m) {
  const digits = ZERO_DIGITS.has(m.currency) ? 0 : THREE_DIGITS.has(m.currency) ? 3 : 2;
  let minor = BigInt(m.amount_minor);
  const sign = minor < 0n ? '-' : '';
  if (minor < 0n) minor = -minor;
  const scale = 10n ** BigInt(digits);
  const units = (minor / scale).toString();
  const rest = (minor % scale).toString().padStart(digits, '0');
  return `${sign}${digits ? `${units}.${rest}` : units} ${m.currency}`;
}

const statusName = (s) => s.replace(/^ORDER_STATUS_/, '');
const causeName = (c) => c.replace(/^CANCEL_CAUSE_/, '').toLowerCase();
const isTerminal = (s) => s === 'ORDER_STATUS_CONFIRMED' || s === 'ORDER_STATUS_CANCELLED';

// Exits with one line for a failed call; never a stack trace.
function rpcFailed(what, service, address, err, timeout) {
  // (grpc-js ends a connection error with an empty "Resolution note:".)
  const details = excerpt(String(err.details || err.message).replace(/\n/g, ' ')
    .replace(/\s*Resolution note:\s*$/, ''), 200);
  switch (err.code) {
    case grpc.status.UNAVAILABLE:
      fail(EXIT.UNAVAILABLE, `${what}: cannot reach ${service} at ${address}: ${details}`);
      break;
    case grpc.status.DEADLINE_EXCEEDED:
      fail(EXIT.UNAVAILABLE, `${what}: no answer from ${service} at ${address} within ${timeout}s`);
      break;
    default: {
      const name = Object.keys(grpc.status).find((k) => grpc.status[k] === err.code) || err.code;
      fail(err.code === grpc.status.NOT_FOUND ? EXIT.NOT_FOUND : EXIT.ERROR,
        `${what}: ${service} said ${name}: ${details}`);
    }
  }
}

const deadline = (seconds) => ({ deadline: Date.now() + seconds * 1000 });

function unary(client, method, request, seconds) {
  return new Promise((resolve, reject) => {
    client[method](request, deadline(seconds),
      (err, response) => (err ? reject(err) : resolve(response)));
  });
}

function printCatalog(products, address) {
  console.log(`catalog of inventory-service at ${address}: ${products.length} products`);
  const rows = [['SKU', 'NAME', 'PRICE', 'AVAILABLE'],
    ...products.map((p) => [p.sku, p.name, money(p.price), String(p.available)])];
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) {
    console.log(`  ${r[0].padEnd(widths[0])}  ${r[1].padEnd(widths[1])}  ` +
      `${r[2].padStart(widths[2])}  ${r[3].padStart(widths[3])}`);
  }
}

// One line for a state of the order, e.g. 'PENDING: stock reserved'.
function describe(order) {
  const text = statusName(order.status);
  if (order.status === 'ORDER_STATUS_CANCELLED') {
    return `${text}: ${causeName(order.cancel_cause)} (${excerpt(order.cancel_reason, 200)})`;
  }
  const progress = [];
  if (order.stock_reserved) progress.push('stock reserved');
  if (order.payment_captured) progress.push('payment captured');
  return progress.length ? `${text}: ${progress.join(', ')}` : text;
}

// Prints each change of the order until it ends; resolves to the last state.
// `shown` is the line printed last: WatchOrder starts with the order as it is
// now, which may still be that state, or already past more changes.
function watch(client, orderId, opts, shown) {
  return new Promise((resolve, reject) => {
    const call = client.WatchOrder({ order_id: orderId }, deadline(opts.waitTimeout));
    let last = null;
    let done = false;
    call.on('data', (order) => {
      if (done) return;
      last = order;
      const line = describe(order);
      if (line !== shown) { // the stream may repeat a state; print changes only
        console.log(`status ${line}`);
        shown = line;
      }
      if (isTerminal(order.status)) {
        done = true;
        call.cancel(); // the server ends the stream now anyway; do not wait for it
        resolve(order);
      }
    });
    call.on('error', (err) => {
      if (done) return; // our own cancel
      done = true;
      if (err.code === grpc.status.DEADLINE_EXCEEDED) {
        const state = last ? statusName(last.status) : 'not seen';
        fail(EXIT.ERROR, `watch order ${orderId}: still ${state} after ${opts.waitTimeout}s`);
      }
      reject(err);
    });
    call.on('end', () => {
      if (done) return;
      done = true;
      fail(EXIT.ERROR, `watch order ${orderId}: the stream ended before the order did`);
    });
  });
}

async function main() {
  const opts = parseFlags();
  const definition = protoLoader.loadSync(
    ['relay/order/v1/order.proto', 'relay/inventory/v1/inventory.proto'],
    { includeDirs: [PROTOS], keepCase: true, longs: String, enums: String, defaults: true });
  const relay = grpc.loadPackageDefinition(definition).relay;
  const credentials = channelCredentials(opts);

  const inventory = new relay.inventory.v1.InventoryService(opts.inventoryAddr, credentials);
  let products;
  try {
    ({ products } = await unary(inventory, 'ListProducts', {}, opts.timeout));
  } catch (err) {
    rpcFailed('list products', 'inventory-service', opts.inventoryAddr, err, opts.timeout);
  } finally {
    inventory.close();
  }
  printCatalog(products, opts.inventoryAddr);

  const orders = new relay.order.v1.OrderService(opts.orderAddr, credentials);
  try {
    let placed;
    try {
      placed = await unary(orders, 'PlaceOrder',
        { customer_id: opts.customer, items: opts.items, idempotency_key: opts.key }, opts.timeout);
    } catch (err) {
      rpcFailed('place order', 'order-service', opts.orderAddr, err, opts.timeout);
    }
    const { order } = placed;
    const lines = order.lines.map((l) => `${l.sku} x${l.quantity}`).join(', ');
    const replayed = placed.replayed ? ' (replayed: this key placed it before)' : '';
    console.log(`placed ${order.order_id} for ${order.customer_id}: ${lines}, ` +
      `total ${money(order.total)}${replayed}`);
    const shown = describe(order);
    console.log(`status ${shown}`);
    let final;
    try {
      final = await watch(orders, order.order_id, opts, shown);
    } catch (err) {
      rpcFailed(`watch order ${order.order_id}`, 'order-service', opts.orderAddr, err,
        opts.timeout);
    }
    console.log(`order ${final.order_id} ${statusName(final.status)}`);
    return final.status === 'ORDER_STATUS_CANCELLED' ? EXIT.CANCELLED : EXIT.OK;
  } finally {
    orders.close();
  }
}

main().then(
  (code) => { process.exitCode = code; },
  (err) => fail(EXIT.ERROR, excerpt(err && err.message ? err.message : err, 200)),
);
