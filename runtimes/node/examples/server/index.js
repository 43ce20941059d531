'use strict';
// Veil sample Node.js server: node's http module on 0.0.0.0:$PORT, plus one
// dependency from npm (ms) to show the install layer.
//
// Any request answers JSON {"hello": "veil", "runtime": "node", "method", "path", "uptime"};
// ?name=x changes the greeting.
const http = require('node:http');
const ms = require('ms');

const started = Date.now();

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  const body = JSON.stringify({
    hello: url.searchParams.get('name') || 'veil',
    runtime: 'node',
    method: req.method,
    path: url.pathname,
    uptime: ms(Date.now() - started),
  });
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
});

const port = Number(process.env.PORT || 8080);
server.listen(port, '0.0.0.0', () => console.log(`listening on 0.0.0.0:${port}`));
// On SIGTERM: stop accepting, finish in-flight requests, and drop idle keep-alive
// connections (a proxy's pool holds them open, and server.close() alone waits for them).
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
