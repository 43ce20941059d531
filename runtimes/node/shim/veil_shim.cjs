'use strict';
/*
 * Veil handler shim for Node.js: serves a user's handler on 0.0.0.0:$PORT.
 * Node's standard library only. Veil runs: node /opt/veil/shim/veil_shim.cjs /app/handler.js
 *
 * handler.js exports one function, sync or async, CommonJS or ES module:
 *   module.exports = (req) => ...     exports.handle = ...
 *   export default (req) => ...       export function handle(req) { ... }
 *
 * req (one per request):
 *   method    'GET', 'POST', ...
 *   url       the request target as sent: '/users/42?x=1'
 *   path      the path without the query string: '/users/42'
 *   query     { name: value }, decoded; the first value of a repeated name
 *   headers   { name: value }, names lower-cased, as Node's http module gives them
 *   body      a Buffer (empty when there is none; at most 10 MiB, else 413)
 *   text      the body decoded as UTF-8
 *   json()    the body parsed as JSON (throws when it is not JSON)
 *
 * The return value (or what the returned promise resolves to) becomes the response:
 *   string                   200, text/plain; charset=utf-8
 *   Buffer / Uint8Array      200, application/octet-stream
 *   null / undefined         204, no body
 *   { status, headers?, body? }   an object with a numeric `status` and no keys other
 *                            than status, headers, body: that status and headers, the
 *                            body converted by these same rules (a Content-Type in
 *                            headers wins)
 *   anything else            200, application/json (JSON.stringify)
 * A thrown error (or rejected promise) answers 500 {"error": "internal error"}; the stack
 * goes to the container log.
 */

const http = require('node:http');
const path = require('node:path');
const { pathToFileURL } = require('node:url');

const MAX_BODY = 10 * 1024 * 1024;
const RESPONSE_KEYS = new Set(['status', 'headers', 'body']);

async function loadHandler(file) {
  const mod = await import(pathToFileURL(path.resolve(file)).href);
  const candidates = [mod.default, mod.handle, mod.default && mod.default.handle];
  for (const candidate of candidates) {
    if (typeof candidate === 'function') return candidate;
  }
  throw new Error(
    `${file} exports no handler: use module.exports = (req) => ..., exports.handle = ..., ` +
      'export default (req) => ... or export function handle(req)',
  );
}

function makeRequest(incoming, body) {
  const target = new URL(incoming.url || '/', 'http://localhost');
  const query = {};
  for (const [name, value] of target.searchParams) {
    if (!Object.prototype.hasOwnProperty.call(query, name)) query[name] = value;
  }
  return {
    method: incoming.method,
    url: incoming.url,
    path: target.pathname,
    query,
    headers: incoming.headers,
    body,
    get text() {
      return body.toString('utf8');
    },
    json() {
      return JSON.parse(body.toString('utf8'));
    },
  };
}

function isResponseObject(value) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return false;
  const keys = Object.keys(value);
  return typeof value.status === 'number' && keys.every((key) => RESPONSE_KEYS.has(key));
}

function encodeBody(body) {
  if (body === undefined || body === null) return [null, null];
  if (typeof body === 'string') return [Buffer.from(body, 'utf8'), 'text/plain; charset=utf-8'];
  if (Buffer.isBuffer(body) || body instanceof Uint8Array) {
    return [Buffer.from(body.buffer, body.byteOffset, body.byteLength), 'application/octet-stream'];
  }
  const json = JSON.stringify(body);
  if (json === undefined) throw new TypeError(`cannot send a ${typeof body} as a response body`);
  return [Buffer.from(json, 'utf8'), 'application/json'];
}

function toResponse(result) {
  let status = 200;
  let headers = {};
  let body = result;
  if (isResponseObject(result)) {
    status = result.status;
    headers = result.headers || {};
    body = result.body;
    if (!Number.isInteger(status) || status < 100 || status > 599) {
      throw new RangeError(`invalid status ${status}`);
    }
  }
  const [payload, contentType] = encodeBody(body);
  if (payload === null && !isResponseObject(result)) status = 204;
  return { status, headers, payload, contentType };
}

function send(res, method, { status, headers, payload, contentType }) {
  const names = new Set(Object.keys(headers).map((name) => name.toLowerCase()));
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  if (contentType && !names.has('content-type')) res.setHeader('Content-Type', contentType);
  const noBody = status === 204 || status === 304 || (status >= 100 && status < 200);
  if (!noBody) res.setHeader('Content-Length', payload ? payload.length : 0);
  res.statusCode = status;
  res.end(method === 'HEAD' || noBody || !payload ? undefined : payload);
}

function sendError(res, status, message) {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  const payload = Buffer.from(JSON.stringify({ error: message }), 'utf8');
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': payload.length });
  res.end(payload);
}

function readBody(incoming) {
  return new Promise((resolve, reject) => {
    const declared = Number(incoming.headers['content-length'] || 0);
    if (declared > MAX_BODY) {
      reject(Object.assign(new Error('body too large'), { status: 413 }));
      return;
    }
    const chunks = [];
    let size = 0;
    incoming.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error('body too large'), { status: 413 }));
        incoming.destroy();
        return;
      }
      chunks.push(chunk);
    });
    incoming.on('end', () => resolve(Buffer.concat(chunks)));
    incoming.on('error', reject);
  });
}

async function main() {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node veil_shim.cjs HANDLER_FILE');
    process.exit(2);
  }
  const handler = await loadHandler(file);
  const server = http.createServer(async (incoming, res) => {
    let body;
    try {
      body = await readBody(incoming);
    } catch (err) {
      res.setHeader('Connection', 'close');
      sendError(res, err.status || 400, err.status === 413 ? 'body too large' : 'bad request');
      return;
    }
    try {
      const result = await handler(makeRequest(incoming, body));
      send(res, incoming.method, toResponse(result));
    } catch (err) {
      console.error(`veil shim: ${incoming.method} ${incoming.url} failed:`, err);
      sendError(res, 500, 'internal error');
    }
  });
  const port = Number(process.env.PORT || 8080);
  server.listen(port, '0.0.0.0', () => {
    console.log(`veil shim: serving ${file} on 0.0.0.0:${port}`);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    if (typeof server.closeIdleConnections === 'function') server.closeIdleConnections();
    setTimeout(() => process.exit(0), 10000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  console.error('veil shim: cannot start:', err);
  process.exit(1);
});
