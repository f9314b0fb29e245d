// A small fake of the cpsagent local API (docs/api.md) for unit tests,
// served over plain HTTP or HTTPS by node:http(s).
import http from 'node:http';
import https from 'node:https';

export const STATUS = {
  agent: 'cpsagent',
  version: '0.9.0-test',
  apiVersion: '1.0',
  capabilities: ['authenticate', 'sign-raw', 'sign-cades', 'events'],
  pcsc: { available: true },
  readers: [{ name: 'Virtual PCD 00 00', cardPresent: true, atr: '3B', card: { generation: 'CPS3', supported: true, serialNumber: '1234' } }],
  cardPresent: true,
};

export function problem(res, status, code, extra = {}) {
  res.writeHead(status, { 'Content-Type': 'application/problem+json' });
  res.end(JSON.stringify({
    type: `https://cpsagent.github.io/problems/${code}`,
    title: code, status, code, detail: `detail of ${code}`, detailFr: `détail de ${code}`, ...extra,
  }));
}

/**
 * Starts a fake agent. `handlers` maps "METHOD /path" to
 * (req, res, body) => void; unhandled routes answer the defaults below.
 * Returns {url, port, requests, close, setHandler, server}.
 */
export async function startFakeAgent({ tls, status = STATUS, handlers = {}, port = 0 } = {}) {
  const requests = [];
  const routes = { ...handlers };
  const onRequest = async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks).toString('utf8');
    const path = req.url.split('?')[0];
    const entry = { method: req.method, url: req.url, path, headers: req.headers, body, closed: false };
    requests.push(entry);
    res.on('close', () => { entry.closed = !res.writableEnded; });
    const h = routes[`${req.method} ${path}`];
    if (h) return h(req, res, body, entry);
    if (req.method === 'GET' && path === '/v1/status') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return res.end(JSON.stringify(status));
    }
    return problem(res, 404, 'not_found');
  };
  const server = tls ? https.createServer(tls, onRequest) : http.createServer(onRequest);
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const p = server.address().port;
  return {
    server,
    port: p,
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${p}`,
    requests,
    setHandler(key, fn) { routes[key] = fn; },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** A TCP port nothing listens on (bound then released). */
export async function freePort() {
  const s = http.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}
