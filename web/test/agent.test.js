// Unit tests of CpsAgent against a fake agent served by node:http(s).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpsAgent, CpsAgentError, ErrorCode, API_VERSION, DEFAULT_PORTS } from '../src/cpsagent.js';
import { startFakeAgent, freePort, problem, STATUS } from './fakeagent.js';

async function rejectsWith(promise, code) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof CpsAgentError, `expected CpsAgentError, got ${e && e.stack}`);
    assert.equal(e.code, code, `code: ${e.code} (${e.message})`);
    return e;
  }
  assert.fail(`expected a rejection with ${code}`);
}

/** A localStorage stand-in. */
function memStorage(init = {}) {
  const m = new Map(Object.entries(init));
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => { m.set(k, String(v)); } };
}

/**
 * A fetch answering /v1/status for the base URLs in answers ({delay, version};
 * delay Infinity never answers), and failing like a refused connection for
 * every other address. It records the URLs asked.
 */
function stubFetch(answers) {
  const calls = [];
  const f = (url, init) => {
    calls.push(url);
    const a = answers[url.replace(/\/v1\/.*$/, '')];
    if (!a) return Promise.reject(new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } }));
    return new Promise((resolve, reject) => {
      init.signal?.addEventListener('abort', () => reject(init.signal.reason), { once: true });
      if (a.delay === Infinity) return;
      setTimeout(() => resolve(new Response(JSON.stringify({ ...STATUS, version: a.version ?? STATUS.version }), {
        status: 200, headers: { 'Content-Type': 'application/json' },
      })), a.delay ?? 0);
    });
  };
  f.calls = calls;
  return f;
}

function json(res, obj, status = 200) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(obj));
}

describe('discovery and version', () => {
  test('finds the agent on the first answering endpoint and caches it', async () => {
    const dead = await freePort();
    const fa = await startFakeAgent({ handlers: { 'GET /v1/readers': (req, res) => json(res, { readers: STATUS.readers }) } });
    try {
      const agent = new CpsAgent({ endpoints: [`http://127.0.0.1:${dead}`, fa.url] });
      const st = await agent.connect();
      assert.equal(st.apiVersion, '1.0');
      assert.equal(agent.endpoint, fa.url);
      await agent.readers();
      assert.deepEqual(fa.requests.map((r) => `${r.method} ${r.path}`), ['GET /v1/status', 'GET /v1/readers']);
    } finally {
      await fa.close();
    }
  });

  test('prefers list order even when a later endpoint answers first', async () => {
    const slow = await startFakeAgent({
      handlers: { 'GET /v1/status': (req, res) => setTimeout(() => json(res, { ...STATUS, version: 'slow' }), 80) },
    });
    const fast = await startFakeAgent({ status: { ...STATUS, version: 'fast' } });
    try {
      const agent = new CpsAgent({ endpoints: [slow.url, fast.url] });
      const st = await agent.connect();
      assert.equal(st.version, 'slow');
      assert.equal(agent.endpoint, slow.url);
    } finally {
      await slow.close();
      await fast.close();
    }
  });

  test('default candidates: ports 47180-47199, IPv4 then IPv6 for each', async () => {
    const all = await new CpsAgent({ storage: null }).candidates();
    assert.equal(all.length, 40);
    assert.deepEqual(all.slice(0, 4), ['https://127.0.0.1:47180', 'https://[::1]:47180', 'https://127.0.0.1:47181', 'https://[::1]:47181']);
    assert.deepEqual(all.slice(-2), ['https://127.0.0.1:47199', 'https://[::1]:47199']);
    assert.deepEqual(DEFAULT_PORTS, Array.from({ length: 20 }, (_, i) => 47180 + i));
    assert.deepEqual(await new CpsAgent({ ports: [47180, 47181] }).candidates(), [
      'https://127.0.0.1:47180', 'https://[::1]:47180', 'https://127.0.0.1:47181', 'https://[::1]:47181',
    ]);
    assert.deepEqual(await new CpsAgent({ endpoints: async () => ['https://127.0.0.1:5/'] }).candidates(), ['https://127.0.0.1:5']);
    assert.throws(() => new CpsAgent({ ports: [0] }), TypeError);
  });

  test('the remembered port comes first, then 47180, then the rest', async () => {
    const remembered = await new CpsAgent({ storage: memStorage({ 'cpsagent.port': '47185' }) }).candidates();
    assert.deepEqual(remembered.slice(0, 6), [
      'https://127.0.0.1:47185', 'https://[::1]:47185', 'https://127.0.0.1:47180', 'https://[::1]:47180',
      'https://127.0.0.1:47181', 'https://[::1]:47181',
    ]);
    assert.equal(remembered.length, 40);
    for (const bad of ['8080', '47180x', '', '-1', '47200']) {
      const c = await new CpsAgent({ storage: memStorage({ 'cpsagent.port': bad }) }).candidates();
      assert.equal(c[0], 'https://127.0.0.1:47180', `remembered ${JSON.stringify(bad)} ignored`);
      assert.equal(c.length, 40);
    }
    const throwing = { getItem() { throw new Error('SecurityError'); }, setItem() { throw new Error('SecurityError'); } };
    assert.equal((await new CpsAgent({ storage: throwing }).candidates())[0], 'https://127.0.0.1:47180');
  });

  test('an agent answering on 47180 spares the other ports', async () => {
    const f = stubFetch({ 'https://127.0.0.1:47180': {} });
    const agent = new CpsAgent({ fetch: f, storage: memStorage() });
    await agent.connect();
    assert.equal(agent.endpoint, 'https://127.0.0.1:47180');
    assert.deepEqual(f.calls.sort(), ['https://127.0.0.1:47180/v1/status', 'https://[::1]:47180/v1/status']);
  });

  test('an agent on another port of the range is found and its port remembered', async () => {
    const storage = memStorage();
    const f = stubFetch({ 'https://127.0.0.1:47183': {} });
    const agent = new CpsAgent({ fetch: f, storage });
    await agent.connect();
    assert.equal(agent.endpoint, 'https://127.0.0.1:47183');
    assert.equal(storage.getItem('cpsagent.port'), '47183');
    assert.equal(f.calls.length, 40, 'the whole range once 47180 failed');
    // Next page load: the remembered port answers first, nothing else is tried.
    const f2 = stubFetch({ 'https://127.0.0.1:47183': {} });
    const again = new CpsAgent({ fetch: f2, storage });
    await again.connect();
    assert.equal(again.endpoint, 'https://127.0.0.1:47183');
    assert.equal(f2.calls.filter((u) => !u.includes(':47183/') && !u.includes(':47180/')).length, 0);
    // rememberPort: false stores nothing.
    const off = memStorage();
    await new CpsAgent({ fetch: stubFetch({ 'https://127.0.0.1:47183': {} }), storage: off, rememberPort: false }).connect();
    assert.equal(off.getItem('cpsagent.port'), null);
  });

  test('a silent program on 47180 does not hide the agent on 47181', async () => {
    const f = stubFetch({ 'https://127.0.0.1:47180': { delay: Infinity }, 'https://127.0.0.1:47181': { version: 'mine' } });
    const agent = new CpsAgent({ fetch: f, storage: memStorage(), fallbackDelay: 50 });
    const st = await agent.connect();
    assert.equal(st.version, 'mine');
    assert.equal(agent.endpoint, 'https://127.0.0.1:47181');
  });

  test('an answer delayed by the consent window still wins', async () => {
    // The agent holds /v1/status while its consent window is open; the
    // rest of the range fails at once; the page waits for the answer.
    const f = stubFetch({ 'https://127.0.0.1:47180': { delay: 300, version: 'after consent' } });
    const t0 = Date.now();
    const st = await new CpsAgent({ fetch: f, storage: memStorage(), fallbackDelay: 20, probeTimeout: 5000 }).connect();
    assert.equal(st.version, 'after consent');
    assert.ok(Date.now() - t0 >= 250);
    assert.equal(f.calls.length, 40);
  });

  test('version_mismatch when the API major differs', async () => {
    const fa = await startFakeAgent({ status: { ...STATUS, apiVersion: '2.0', version: '3.1.0' } });
    try {
      const e = await rejectsWith(new CpsAgent({ endpoints: [fa.url] }).connect(), ErrorCode.VERSION_MISMATCH);
      assert.equal(e.apiVersion, '2.0');
      assert.equal(e.agentVersion, '3.1.0');
      assert.match(e.remediation.fr, /version/);
      assert.match(e.remediation.en, /version/);
    } finally {
      await fa.close();
    }
  });

  test('a newer minor version is accepted', async () => {
    const fa = await startFakeAgent({ status: { ...STATUS, apiVersion: '1.7' } });
    try {
      const st = await new CpsAgent({ endpoints: [fa.url] }).connect();
      assert.equal(st.apiVersion, '1.7');
      assert.equal(API_VERSION, '1.0');
    } finally {
      await fa.close();
    }
  });

  test('version_mismatch when a required capability is missing', async () => {
    const fa = await startFakeAgent();
    try {
      const e = await rejectsWith(
        new CpsAgent({ endpoints: [fa.url], requiredCapabilities: ['sign-cades', 'pades'] }).connect(),
        'version_mismatch',
      );
      assert.deepEqual(e.missingCapabilities, ['pades']);
    } finally {
      await fa.close();
    }
  });

  test('protocol_error when something else answers on the port', async () => {
    const fa = await startFakeAgent({
      handlers: { 'GET /v1/status': (req, res) => { res.writeHead(200, { 'Content-Type': 'text/html' }); res.end('<html>other</html>'); } },
    });
    try {
      await rejectsWith(new CpsAgent({ endpoints: [fa.url] }).connect(), 'protocol_error');
    } finally {
      await fa.close();
    }
  });

  test('agent_unreachable when nothing listens, with remediation naming the address', async () => {
    const port = await freePort();
    const e = await rejectsWith(new CpsAgent({ endpoints: [`http://127.0.0.1:${port}`] }).connect(), 'agent_unreachable');
    assert.equal(e.status, 0);
    assert.ok(e.remediation.fr.includes(`http://127.0.0.1:${port}/v1/status`));
    assert.ok(e.retryable);
  });

  test('failed discovery is retried by the next call', async () => {
    const port = await freePort();
    const agent = new CpsAgent({ endpoints: [`http://127.0.0.1:${port}`] });
    await rejectsWith(agent.connect(), 'agent_unreachable');
    const fa = await startFakeAgent({ port });
    try {
      const st = await agent.connect();
      assert.equal(st.agent, 'cpsagent');
    } finally {
      await fa.close();
    }
  });

  test('a GET rediscovers once when the cached agent went away', async () => {
    const fa1 = await startFakeAgent();
    const fa2 = await startFakeAgent({ status: { ...STATUS, version: 'second' } });
    try {
      const agent = new CpsAgent({ endpoints: [fa1.url, fa2.url] });
      await agent.connect();
      assert.equal(agent.endpoint, fa1.url);
      await fa1.close();
      const st = await agent.status();
      assert.equal(st.version, 'second');
      assert.equal(agent.endpoint, fa2.url);
    } finally {
      await fa2.close();
    }
  });
});

describe('certificate_untrusted (Node fetch reports TLS causes)', () => {
  let dir;
  let tls;
  before(() => {
    try {
      dir = mkdtempSync(join(tmpdir(), 'cpsagent-web-'));
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '2', '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
      tls = { key: readFileSync(join(dir, 'k.pem')), cert: readFileSync(join(dir, 'c.pem')) };
    } catch {
      tls = null;
    }
  });
  after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  test('self-signed agent certificate → certificate_untrusted', async (t) => {
    if (!tls) return t.skip('openssl not available');
    const fa = await startFakeAgent({ tls });
    try {
      const e = await rejectsWith(new CpsAgent({ endpoints: [fa.url] }).connect(), ErrorCode.CERTIFICATE_UNTRUSTED);
      assert.match(e.remediation.fr, /certificat/);
      assert.equal(fa.requests.length, 0, 'no HTTP request may pass an untrusted handshake');
    } finally {
      await fa.close();
    }
  });
});

// security.md §6 item 7 (Go side: TestSec07_SquatterCertificateRefused in
// internal/doctor). A program squatting the agent's port with a
// self-signed certificate that names everything the agent's does, and
// answering every route the way the agent would, gets no request at all:
// the TLS handshake fails first, so the page never sends it a nonce or a
// document and never gets an answer that could stand for a PIN prompt
// (the library has no PIN input of its own; the PIN is typed only in the
// agent's native window).
describe('TestSec07_SquatterCertificateRefused', () => {
  let dir;
  let tls;
  before(() => {
    try {
      dir = mkdtempSync(join(tmpdir(), 'cpsagent-squatter-'));
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '2', '-subj', '/CN=localhost',
        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1', '-addext', 'extendedKeyUsage=serverAuth'], { stdio: 'ignore' });
      tls = { key: readFileSync(join(dir, 'k.pem')), cert: readFileSync(join(dir, 'c.pem')) };
    } catch {
      tls = null;
    }
  });
  after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  // Answers like cpsagent on every route.
  const impersonation = {
    'GET /v1/card': (req, res) => json(res, { familyName: 'MARTIN', givenName: 'Jeanne' }),
    'POST /v1/authenticate': (req, res) => json(res, { unverifiedCertificate: 'AA==', algorithm: 'RS256', signature: 'AA==', format: 'web-eid:1.0', appVersion: 'x' }),
    'POST /v1/sign': (req, res) => json(res, { signature: 'AA==', format: 'cades', certificate: 'AA==' }),
  };

  test('every call fails with certificate_untrusted and the squatter receives nothing', async (t) => {
    if (!tls) return t.skip('openssl not available');
    const sq = await startFakeAgent({ tls, handlers: impersonation });
    try {
      const agent = new CpsAgent({ endpoints: [sq.url], storage: null });
      const calls = {
        connect: () => agent.connect(),
        readCard: () => agent.readCard(),
        authenticate: () => agent.authenticate('N'.repeat(44)),
        sign: () => agent.sign({ document: 'JVBERi0=' }, { description: 'Ordonnance' }),
      };
      for (const [name, call] of Object.entries(calls)) {
        const e = await rejectsWith(call(), ErrorCode.CERTIFICATE_UNTRUSTED);
        assert.equal(e.endpoint, sq.url, name);
      }
      assert.deepEqual(sq.requests, [], 'no HTTP request may pass an untrusted handshake');
    } finally {
      await sq.close();
    }
  });

  test('a squatter on the first port does not hide the agent on the next one', async (t) => {
    if (!tls) return t.skip('openssl not available');
    const sq = await startFakeAgent({ tls, handlers: impersonation });
    const real = await startFakeAgent({ status: { ...STATUS, version: 'real' } });
    try {
      const agent = new CpsAgent({ endpoints: [sq.url, real.url], storage: null });
      const st = await agent.connect();
      assert.equal(st.version, 'real');
      assert.equal(agent.endpoint, real.url);
      assert.deepEqual(sq.requests, []);
    } finally {
      await sq.close();
      await real.close();
    }
  });
});

describe('card operations', () => {
  test('readCard passes the reader and returns the identity', async () => {
    const fa = await startFakeAgent({
      handlers: { 'GET /v1/card': (req, res) => json(res, { version: 1, nationalId: '899700367917', familyName: 'DOC' }) },
    });
    try {
      const id = await new CpsAgent({ endpoints: [fa.url] }).readCard({ reader: 'Virtual PCD 00 00' });
      assert.equal(id.nationalId, '899700367917');
      assert.equal(fa.requests.at(-1).url, '/v1/card?reader=Virtual%20PCD%2000%2000');
    } finally {
      await fa.close();
    }
  });

  test('authenticate posts the nonce as JSON and returns the token', async () => {
    const token = { unverifiedCertificate: 'MIIB', algorithm: 'RS256', signature: 'c2ln', format: 'web-eid:1.0', appVersion: 'https://cpsagent/0.9' };
    const fa = await startFakeAgent({ handlers: { 'POST /v1/authenticate': (req, res) => json(res, token) } });
    try {
      const nonce = 'A'.repeat(44);
      const got = await new CpsAgent({ endpoints: [fa.url], lang: 'fr' }).authenticate(nonce, { reader: 'R1' });
      assert.deepEqual(got, token);
      const req = fa.requests.at(-1);
      assert.equal(req.headers['content-type'], 'application/json');
      assert.deepEqual(JSON.parse(req.body), { challengeNonce: nonce, reader: 'R1', lang: 'fr' });
    } finally {
      await fa.close();
    }
  });

  test('authenticate refuses a malformed nonce without calling the agent', async () => {
    const agent = new CpsAgent({ endpoints: ['http://127.0.0.1:9'] });
    for (const n of [undefined, 42, 'short', 'x'.repeat(129)]) {
      const e = await rejectsWith(agent.authenticate(n), 'bad_request');
      assert.equal(e.field, 'challengeNonce');
    }
  });

  test('authenticate rejects an answer that is not a token', async () => {
    const fa = await startFakeAgent({ handlers: { 'POST /v1/authenticate': (req, res) => json(res, { hello: 1 }) } });
    try {
      await rejectsWith(new CpsAgent({ endpoints: [fa.url] }).authenticate('B'.repeat(44)), 'protocol_error');
    } finally {
      await fa.close();
    }
  });

  const signResult = { signature: 'MIAG', format: 'cades', signatureAlgorithm: { cryptoAlgorithm: 'RSA', hashFunction: 'SHA-256', paddingScheme: 'PKCS1.5' }, certificate: 'MIIC' };
  const bytes = new TextEncoder().encode('hello document');
  const b64 = Buffer.from(bytes).toString('base64');
  const digest = new Uint8Array(32).fill(7);
  const digestB64 = Buffer.from(digest).toString('base64');

  const cases = [
    ['document as Uint8Array', { document: bytes, format: 'cades' }, { document: b64, format: 'cades' }],
    ['document as ArrayBuffer', { document: bytes.slice().buffer }, { document: b64, format: 'cades' }],
    ['document as Blob', { document: new Blob([bytes]) }, { document: b64, format: 'cades' }],
    ['document as base64', { document: b64, format: 'cades' }, { document: b64, format: 'cades' }],
    ['document as base64url without padding', { document: Buffer.from([251, 255]).toString('base64url') }, { document: '+/8=', format: 'cades' }],
    ['document as DataView slice', { document: new DataView(new Uint8Array([0, ...bytes, 0]).buffer, 1, bytes.length) }, { document: b64, format: 'cades' }],
    ['documentDigest', { documentDigest: digest, digestAlgorithm: 'SHA-256', format: 'cades' }, { documentDigest: digestB64, digestAlgorithm: 'SHA-256', format: 'cades' }],
    ['documentDigest with defaults', { documentDigest: digestB64 }, { documentDigest: digestB64, digestAlgorithm: 'SHA-256', format: 'cades' }],
    ['dataToSign', { dataToSign: bytes }, { dataToSign: b64 }],
  ];
  for (const [name, request, wantBody] of cases) {
    test(`sign: ${name}`, async () => {
      const fa = await startFakeAgent({ handlers: { 'POST /v1/sign': (req, res) => json(res, signResult) } });
      try {
        const got = await new CpsAgent({ endpoints: [fa.url] }).sign(request, { description: 'Ordonnance 42' });
        assert.deepEqual(got, signResult);
        assert.deepEqual(JSON.parse(fa.requests.at(-1).body), { ...wantBody, description: 'Ordonnance 42' });
      } finally {
        await fa.close();
      }
    });
  }

  const badCases = [
    ['no mode', {}, 'bad_request'],
    ['two modes', { document: bytes, documentDigest: digest }, 'bad_request'],
    ['not base64', { document: 'hello!' }, 'bad_request'],
    ['number', { document: 5 }, 'bad_request'],
    ['digest of wrong size', { documentDigest: new Uint8Array(20) }, 'bad_request'],
    ['SHA-1 digest', { documentDigest: digest, digestAlgorithm: 'SHA-1' }, 'bad_request'],
    ['PAdES', { document: bytes, format: 'pades' }, 'bad_request'],
    ['dataToSign with cades', { dataToSign: bytes, format: 'cades' }, 'bad_request'],
    ['dataToSign over 64 KiB', { dataToSign: new Uint8Array(64 * 1024 + 1) }, 'payload_too_large'],
    ['document over 16 MiB', { document: new Uint8Array(12 * 1024 * 1024 + 1) }, 'payload_too_large'],
  ];
  for (const [name, request, code] of badCases) {
    test(`sign refuses ${name} without calling the agent`, async () => {
      const fa = await startFakeAgent();
      try {
        await rejectsWith(new CpsAgent({ endpoints: [fa.url] }).sign(request), code);
        assert.equal(fa.requests.filter((r) => r.path === '/v1/sign').length, 0);
      } finally {
        await fa.close();
      }
    });
  }

  test('sign refuses a description over 200 characters', async () => {
    await rejectsWith(new CpsAgent({ endpoints: ['http://127.0.0.1:9'] }).sign({ document: bytes }, { description: 'x'.repeat(201) }), 'bad_request');
  });
});

describe('API problems become typed errors', () => {
  const apiCodes = [
    ['bad_request', 400, { field: 'challengeNonce' }],
    ['origin_not_allowed', 403],
    ['method_not_allowed', 405],
    ['unsupported_media_type', 415],
    ['payload_too_large', 413],
    ['not_found', 404],
    ['agent_busy', 409],
    ['reader_absent', 409],
    ['card_absent', 409],
    ['card_removed', 409],
    ['card_changed', 409],
    ['card_unsupported', 409],
    ['operation_not_supported', 409],
    ['pcsc_unavailable', 503],
    ['pin_cancelled', 409],
    ['pin_incorrect', 409, { triesLeft: 2 }],
    ['pin_blocked', 409],
    ['pin_unavailable', 503],
    ['card_error', 502],
    ['internal', 500],
    ['host_not_allowed', 421],
    ['rate_limited', 429],
    ['reader_ambiguous', 409],
    ['card_reset', 409],
    ['pin_format', 409],
    ['agent_shutting_down', 503],
  ];
  for (const [code, status, extra] of apiCodes) {
    test(`${status} ${code}`, async () => {
      // 421 makes Node's fetch retry a request on a new connection, which
      // a POST body cannot survive: use a GET for it.
      const post = status !== 421;
      const fa = await startFakeAgent({ handlers: { [post ? 'POST /v1/authenticate' : 'GET /v1/card']: (req, res) => problem(res, status, code, extra) } });
      try {
        const agent = new CpsAgent({ endpoints: [fa.url] });
        await agent.connect();
        const e = await rejectsWith(post ? agent.authenticate('C'.repeat(44)) : agent.readCard(), code);
        assert.equal(e.status, status);
        assert.equal(e.detail, `detail of ${code}`);
        assert.equal(e.detailFr, `détail de ${code}`);
        assert.equal(e.problem.code, code);
        assert.ok(e.remediation.fr.length > 10 && e.remediation.en.length > 10);
        assert.notEqual(e.remediation.fr, e.remediation.en);
        if (extra?.field) assert.equal(e.field, extra.field);
        if (extra?.triesLeft) {
          assert.equal(e.triesLeft, 2);
          assert.match(e.remediation.fr, /Il reste 2 essai/);
          assert.match(e.remediation.en, /2 attempt/);
        }
      } finally {
        await fa.close();
      }
    });
  }

  test('last PIN try carries a warning', async () => {
    const fa = await startFakeAgent({ handlers: { 'POST /v1/sign': (req, res) => problem(res, 409, 'pin_incorrect', { triesLeft: 1 }) } });
    try {
      const e = await rejectsWith(new CpsAgent({ endpoints: [fa.url] }).sign({ document: 'AAAA' }), 'pin_incorrect');
      assert.match(e.remediation.fr, /bloquera/);
      assert.match(e.localizedMessage('en'), /block the card/);
    } finally {
      await fa.close();
    }
  });

  test('an unknown code from a newer agent keeps its code and the agent texts', async () => {
    const fa = await startFakeAgent({ handlers: { 'GET /v1/card': (req, res) => problem(res, 409, 'card_expired') } });
    try {
      const e = await rejectsWith(new CpsAgent({ endpoints: [fa.url] }).readCard(), 'card_expired');
      assert.equal(e.remediation.fr, 'détail de card_expired');
      assert.equal(e.remediation.en, 'detail of card_expired');
    } finally {
      await fa.close();
    }
  });

  test('an error without problem code is a protocol_error', async () => {
    const fa = await startFakeAgent({ handlers: { 'GET /v1/card': (req, res) => json(res, { oops: true }, 500) } });
    try {
      await rejectsWith(new CpsAgent({ endpoints: [fa.url] }).readCard(), 'protocol_error');
    } finally {
      await fa.close();
    }
  });
});

describe('cancellation and timeouts', () => {
  test('AbortSignal cancels a pending sign; the agent sees the client go', async () => {
    let arrived;
    const arrivedP = new Promise((r) => { arrived = r; });
    const fa = await startFakeAgent({ handlers: { 'POST /v1/sign': (req, res, body, entry) => { arrived(entry); } } });
    try {
      const agent = new CpsAgent({ endpoints: [fa.url] });
      await agent.connect();
      const ctl = new AbortController();
      const p = agent.sign({ document: 'AAAA' }, { signal: ctl.signal });
      const entry = await arrivedP;
      ctl.abort();
      await rejectsWith(p, 'aborted');
      await new Promise((resolve) => {
        const check = () => (entry.closed ? resolve() : setTimeout(check, 5));
        check();
      });
      assert.equal(fa.requests.filter((r) => r.path === '/v1/sign').length, 1, 'no retry of a POST');
    } finally {
      await fa.close();
    }
  });

  test('an already aborted signal fails before any request', async () => {
    const fa = await startFakeAgent();
    try {
      const ctl = new AbortController();
      ctl.abort();
      await rejectsWith(new CpsAgent({ endpoints: [fa.url] }).readCard({ signal: ctl.signal }), 'aborted');
      assert.equal(fa.requests.filter((r) => r.path === '/v1/card').length, 0);
    } finally {
      await fa.close();
    }
  });

  test('abort while discovery waits', async () => {
    const fa = await startFakeAgent({ handlers: { 'GET /v1/status': () => {} } });
    try {
      const ctl = new AbortController();
      const p = new CpsAgent({ endpoints: [fa.url], probeTimeout: 10000 }).connect({ signal: ctl.signal });
      setTimeout(() => ctl.abort(), 20);
      await rejectsWith(p, 'aborted');
    } finally {
      await fa.close();
    }
  });

  test('timeout on a silent agent', async () => {
    const fa = await startFakeAgent({ handlers: { 'GET /v1/card': () => {} } });
    try {
      const agent = new CpsAgent({ endpoints: [fa.url] });
      await agent.connect();
      const e = await rejectsWith(agent.readCard({ timeout: 50 }), 'timeout');
      assert.ok(e.retryable);
    } finally {
      await fa.close();
    }
  });

  test('discovery probe timeout', async () => {
    const fa = await startFakeAgent({ handlers: { 'GET /v1/status': () => {} } });
    try {
      await rejectsWith(new CpsAgent({ endpoints: [fa.url], probeTimeout: 50 }).connect(), 'timeout');
    } finally {
      await fa.close();
    }
  });

  test('interactive calls use the interactive timeout', async () => {
    const fa = await startFakeAgent({ handlers: { 'POST /v1/authenticate': () => {} } });
    try {
      const agent = new CpsAgent({ endpoints: [fa.url], timeout: 10, interactiveTimeout: 120 });
      await agent.connect();
      const t0 = Date.now();
      await rejectsWith(agent.authenticate('D'.repeat(44)), 'timeout');
      assert.ok(Date.now() - t0 >= 100, 'interactive timeout, not the short one');
    } finally {
      await fa.close();
    }
  });
});
