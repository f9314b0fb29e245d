// Failures only a browser produces, with fetch and navigator stubbed the way
// Chromium behaves (checked in web/e2e): every network failure is the same
// TypeError("Failed to fetch") without a cause.
import { test, describe, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { CpsAgent, CpsAgentError, localNetworkPermission } from '../src/cpsagent.js';

const EP = 'https://127.0.0.1:47180';

function browserFetch({ cors, noCors }) {
  const calls = [];
  const f = async (url, init) => {
    calls.push({ url, init });
    const h = init.mode === 'no-cors' ? noCors : cors;
    return h(url, init);
  };
  f.calls = calls;
  return f;
}
const failed = () => { throw new TypeError('Failed to fetch'); };
const opaque = () => ({ type: 'opaque', status: 0, ok: false, text: async () => '' });

function setNavigator(value) {
  Object.defineProperty(globalThis, 'navigator', { value, configurable: true, writable: true });
}
const savedNavigator = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
afterEach(() => {
  if (savedNavigator) Object.defineProperty(globalThis, 'navigator', savedNavigator);
  else delete globalThis.navigator;
  delete globalThis.isSecureContext;
});

function permissions(states) {
  return {
    async query({ name }) {
      if (!(name in states)) throw new TypeError(`The provided value '${name}' is not a valid enum value of type PermissionName.`);
      return { state: states[name] };
    },
  };
}

async function codeOf(p) {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CpsAgentError, String(e));
    return e;
  }
  assert.fail('expected a rejection');
}

describe('browser failure classification', () => {
  test('Local Network Access denied (Chrome 145+ name)', async () => {
    setNavigator({ language: 'fr-FR', permissions: permissions({ 'loopback-network': 'denied', 'local-network-access': 'denied' }) });
    const f = browserFetch({ cors: failed, noCors: failed });
    const e = await codeOf(new CpsAgent({ endpoints: [EP], fetch: f }).connect());
    assert.equal(e.code, 'local_network_access_denied');
    assert.match(e.remediation.fr, /LoopbackNetworkAllowedForUrls/);
    assert.equal(f.calls.filter((c) => c.init.mode === 'no-cors').length, 0, 'no probe once LNA explains it');
  });

  test('Local Network Access denied (Chrome 142-144 name only)', async () => {
    setNavigator({ permissions: permissions({ 'local-network-access': 'denied' }) });
    const e = await codeOf(new CpsAgent({ endpoints: [EP], fetch: browserFetch({ cors: failed, noCors: failed }) }).connect());
    assert.equal(e.code, 'local_network_access_denied');
    assert.equal(await localNetworkPermission(), 'denied');
  });

  test('origin refused by the agent: CORS fails but a no-cors request gets an answer', async () => {
    setNavigator({ permissions: permissions({ 'loopback-network': 'granted' }) });
    const f = browserFetch({ cors: failed, noCors: opaque });
    const e = await codeOf(new CpsAgent({ endpoints: [EP], fetch: f }).connect());
    assert.equal(e.code, 'origin_not_allowed');
    const probe = f.calls.find((c) => c.init.mode === 'no-cors');
    assert.equal(probe.url, `${EP}/v1/status`);
    assert.equal(probe.init.method, 'GET');
    assert.equal(probe.init.credentials, 'omit');
  });

  test('nothing answers at all: agent_unreachable, remediation covers the certificate', async () => {
    setNavigator({ permissions: permissions({ 'loopback-network': 'prompt' }) });
    const e = await codeOf(new CpsAgent({ endpoints: [EP], fetch: browserFetch({ cors: failed, noCors: failed }) }).connect());
    assert.equal(e.code, 'agent_unreachable');
    assert.match(e.remediation.fr, /certificat/);
    assert.match(e.remediation.en, /certificate/);
    assert.ok(e.remediation.fr.includes(`${EP}/v1/status`));
  });

  test('browsers without the permission (Firefox, Safari) still classify', async () => {
    setNavigator({ permissions: permissions({ geolocation: 'prompt' }) });
    assert.equal(await localNetworkPermission(), null);
    const e = await codeOf(new CpsAgent({ endpoints: [EP], fetch: browserFetch({ cors: failed, noCors: opaque }) }).connect());
    assert.equal(e.code, 'origin_not_allowed');
  });

  test('the most specific error wins across endpoints', async () => {
    setNavigator({ permissions: permissions({}) });
    const f = browserFetch({
      cors: failed,
      noCors: (url) => (url.startsWith('https://[::1]') ? opaque() : failed()),
    });
    const e = await codeOf(new CpsAgent({ endpoints: [EP, 'https://[::1]:47180'], fetch: f }).connect());
    assert.equal(e.code, 'origin_not_allowed');
    assert.equal(e.endpoint, 'https://[::1]:47180');
  });

  test('insecure_context on an http:// page, before any request', async () => {
    globalThis.isSecureContext = false;
    const f = browserFetch({ cors: failed, noCors: failed });
    const agent = new CpsAgent({ endpoints: [EP], fetch: f });
    for (const p of [agent.connect(), agent.readCard(), agent.authenticate('N'.repeat(44)), agent.sign({ document: 'AAAA' })]) {
      const e = await codeOf(p);
      assert.equal(e.code, 'insecure_context');
      assert.match(e.remediation.fr, /https/);
    }
    assert.equal(f.calls.length, 0);
  });

  test('targetAddressSpace "loopback" only for host names, not IP literals', async () => {
    const seen = [];
    const f = async (url, init) => {
      seen.push([new URL(url).hostname, init.targetAddressSpace]);
      return { ok: true, status: 200, type: 'cors', text: async () => JSON.stringify({ apiVersion: '1.0', capabilities: [] }) };
    };
    await new CpsAgent({ endpoints: ['https://localhost:47180'], fetch: f }).connect();
    await new CpsAgent({ endpoints: [EP], fetch: f }).connect();
    await new CpsAgent({ endpoints: ['https://[::1]:47180'], fetch: f }).connect();
    assert.deepEqual(seen, [['localhost', 'loopback'], ['127.0.0.1', undefined], ['[::1]', undefined]]);
  });

  test('requests carry no credentials, no referrer, no cache', async () => {
    let init;
    const f = async (url, i) => {
      init = i;
      return { ok: true, status: 200, type: 'cors', text: async () => JSON.stringify({ apiVersion: '1.0' }) };
    };
    await new CpsAgent({ endpoints: [EP], fetch: f }).connect();
    assert.equal(init.credentials, 'omit');
    assert.equal(init.referrerPolicy, 'no-referrer');
    assert.equal(init.cache, 'no-store');
    assert.equal(init.mode, 'cors');
    assert.equal(init.redirect, 'error');
  });

  test('PIN window language follows navigator.language unless set', async () => {
    setNavigator({ language: 'fr-CA' });
    const bodies = [];
    const f = async (url, init) => {
      if (init.body) bodies.push(JSON.parse(init.body));
      const body = url.endsWith('/v1/status') ? { apiVersion: '1.0' } : { unverifiedCertificate: 'x', signature: 'y', format: 'web-eid:1.0' };
      return { ok: true, status: 200, type: 'cors', text: async () => JSON.stringify(body) };
    };
    await new CpsAgent({ endpoints: [EP], fetch: f }).authenticate('N'.repeat(44));
    await new CpsAgent({ endpoints: [EP], fetch: f, lang: 'en' }).authenticate('N'.repeat(44));
    assert.deepEqual(bodies.map((b) => b.lang), ['fr', 'en']);
  });
});
