'use strict';
// Veil sample Node.js handler: no server, just a function. Veil's shim serves it on
// 0.0.0.0:$PORT (see runtimes/node/shim/veil_shim.cjs for the request/response shapes).
//
// GET  /anything?name=x  -> 200 {"hello": "x", "runtime": "node", ...}
// POST /anything         -> 201 with the JSON body echoed back (400 if it is not JSON)

module.exports = async function handle(req) {
  if (req.method === 'POST') {
    let data;
    try {
      data = req.json();
    } catch {
      return { status: 400, body: { error: 'send a JSON body' } };
    }
    return { status: 201, headers: { 'X-Veil-Example': 'node-handler' }, body: { echo: data } };
  }
  return {
    hello: req.query.name || 'world',
    runtime: 'node',
    contract: 'handler',
    method: req.method,
    path: req.path,
  };
};
