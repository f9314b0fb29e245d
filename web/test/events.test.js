// Tests of the /v1/events subscription with a scripted WebSocket.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { CpsAgent, backoffDelay } from '../src/cpsagent.js';

const EP = 'https://127.0.0.1:47180';
const STATUS = { agent: 'cpsagent', version: '1', apiVersion: '1.0', capabilities: [], pcsc: { available: true }, readers: [], cardPresent: false };

/** A WebSocket double whose server side the test drives. */
function fakeWebSocketClass() {
  const sockets = [];
  const waiters = [];
  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.closedWith = null;
      sockets.push(this);
      for (const w of waiters.splice(0)) w(this);
    }
    // client side
    close(code) {
      this.closedWith = code;
      this.readyState = 3;
    }
    // server side
    open() { this.readyState = 1; this.onopen?.({}); }
    send(obj) { this.onmessage?.({ data: typeof obj === 'string' ? obj : JSON.stringify(obj) }); }
    drop(code = 1006) { this.readyState = 3; this.onclose?.({ code }); }
  }
  FakeWebSocket.sockets = sockets;
  /** Resolves with the n-th socket (0-based) once it exists. */
  FakeWebSocket.nth = (n) => new Promise((resolve) => {
    const check = () => (sockets.length > n ? resolve(sockets[n]) : waiters.push(check));
    check();
  });
  return FakeWebSocket;
}

/** fetch double: status answers while `up` is true; otherwise "connection refused". */
function agentFetch(state) {
  const f = async (url) => {
    f.count++;
    if (!state.up) {
      const e = new TypeError('fetch failed');
      e.cause = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      throw e;
    }
    return { ok: true, status: 200, type: 'cors', text: async () => JSON.stringify(state.status ?? STATUS) };
  };
  f.count = 0;
  return f;
}

/** Records callbacks; until(pred) resolves at the first matching record. */
function recorder() {
  const log = [];
  const waiters = [];
  const push = (rec) => {
    log.push(rec);
    for (const w of [...waiters]) {
      if (w.pred(rec)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(rec);
      }
    }
  };
  return {
    log,
    handlers: {
      onEvent: (e) => push({ kind: 'event', type: e.type, e }),
      onStatus: (s) => push({ kind: 'status', s }),
      onStateChange: (state, info) => push({ kind: 'state', state, info }),
      onError: (err) => push({ kind: 'error', code: err.code, err }),
    },
    until(pred) {
      const found = log.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve) => waiters.push({ pred, resolve }));
    },
    /** Like until, but only records that arrive from now on. */
    next(pred) {
      return new Promise((resolve) => waiters.push({ pred, resolve }));
    },
  };
}

const FAST = { initialDelay: 4, maxDelay: 32, factor: 2, jitter: 0 };

describe('events subscription', () => {
  test('hello opens, forwards status and events, wss:// URL', async () => {
    const WS = fakeWebSocketClass();
    const agent = new CpsAgent({ endpoints: [EP], fetch: agentFetch({ up: true }), WebSocket: WS });
    const r = recorder();
    const sub = agent.events({ ...r.handlers, reconnect: FAST });
    const ws = await WS.nth(0);
    assert.equal(ws.url, 'wss://127.0.0.1:47180/v1/events');
    ws.open();
    ws.send({ type: 'hello', apiVersion: '1.0', status: { ...STATUS, cardPresent: true } });
    await r.until((x) => x.kind === 'state' && x.state === 'open');
    assert.equal(sub.state, 'open');
    assert.equal(sub.status.cardPresent, true);
    ws.send({ type: 'card-removed', reader: 'R', serialNumber: '1', generation: 'CPS3', time: '2026-01-01T00:00:00Z' });
    const ev = await r.until((x) => x.kind === 'event' && x.type === 'card-removed');
    assert.equal(ev.e.reader, 'R');
    assert.deepEqual(r.log.filter((x) => x.kind === 'event').map((x) => x.type), ['hello', 'card-removed']);
    assert.equal(r.log.filter((x) => x.kind === 'status').length, 1);
    sub.close();
    assert.equal(ws.closedWith, 1000);
    await sub.closed;
    assert.equal(sub.state, 'closed');
  });

  test('reconnects after the agent goes away, with growing delays, then resubscribes', async () => {
    const WS = fakeWebSocketClass();
    const state = { up: true };
    const f = agentFetch(state);
    const agent = new CpsAgent({ endpoints: [EP], fetch: f, WebSocket: WS });
    const r = recorder();
    const sub = agent.events({ ...r.handlers, reconnect: FAST });
    const ws0 = await WS.nth(0);
    ws0.open();
    ws0.send({ type: 'hello', apiVersion: '1.0', status: STATUS });
    await r.until((x) => x.kind === 'state' && x.state === 'open');

    // The agent stops: the socket drops and discovery fails a few times.
    state.up = false;
    const errP = r.next((x) => x.kind === 'error');
    const mark = r.log.length;
    ws0.drop(1006);
    const err = await errP;
    assert.equal(err.code, 'agent_unreachable');
    await r.until((x) => r.log.indexOf(x) >= mark && x.kind === 'state' && x.info.delay === 32 && x.info.attempt === 5);
    const delays = r.log.slice(mark).filter((x) => x.kind === 'state' && x.info.delay !== undefined).map((x) => x.info.delay);
    assert.deepEqual(delays.slice(0, 5), [4, 8, 16, 32, 32], 'doubling from initialDelay up to maxDelay');

    // The agent is back: a new socket, a new hello, attempts reset.
    state.up = true;
    const ws1 = await WS.nth(1);
    ws1.open();
    const openP = r.next((x) => x.kind === 'state' && x.state === 'open');
    ws1.send({ type: 'hello', apiVersion: '1.0', status: { ...STATUS, cardPresent: true } });
    await openP;
    assert.equal(r.log.filter((x) => x.kind === 'status').length, 2, 'status re-sent after reconnection');
    assert.equal(sub.status.cardPresent, true);
    const againP = r.next((x) => x.kind === 'state' && x.state === 'reconnecting' && x.info.delay !== undefined);
    ws1.drop(1006);
    const again = await againP;
    assert.equal(again.info.delay, 4, 'backoff starts over after a successful hello');
    sub.close();
    await sub.closed;
  });

  test('a socket refused before hello is diagnosed over HTTP', async () => {
    const WS = fakeWebSocketClass();
    const state = { up: true };
    const agent = new CpsAgent({ endpoints: [EP], fetch: agentFetch(state), WebSocket: WS });
    const r = recorder();
    const sub = agent.events({ ...r.handlers, reconnect: FAST });
    const ws0 = await WS.nth(0);
    const eP = r.next((x) => x.kind === 'error');
    ws0.drop(1006); // HTTP answers but the upgrade failed
    const e = await eP;
    assert.equal(e.code, 'protocol_error');
    sub.close();
  });

  test('version mismatch in hello is fatal: no reconnection', async () => {
    const WS = fakeWebSocketClass();
    const agent = new CpsAgent({ endpoints: [EP], fetch: agentFetch({ up: true }), WebSocket: WS });
    const r = recorder();
    const sub = agent.events({ ...r.handlers, reconnect: FAST });
    const ws = await WS.nth(0);
    ws.open();
    ws.send({ type: 'hello', apiVersion: '2.0', status: STATUS });
    await sub.closed;
    assert.equal(r.log.find((x) => x.kind === 'error').code, 'version_mismatch');
    assert.equal(ws.closedWith, 1000);
    assert.equal(WS.sockets.length, 1);
    assert.equal(r.log.filter((x) => x.kind === 'event').length, 0);
  });

  test('version mismatch found by discovery is fatal too', async () => {
    const WS = fakeWebSocketClass();
    const agent = new CpsAgent({ endpoints: [EP], fetch: agentFetch({ up: true, status: { ...STATUS, apiVersion: '0.9' } }), WebSocket: WS });
    const r = recorder();
    const sub = agent.events({ ...r.handlers, reconnect: FAST });
    await sub.closed;
    assert.equal(r.log.find((x) => x.kind === 'error').code, 'version_mismatch');
    assert.equal(WS.sockets.length, 0);
  });

  test('reconnect:false stops at the first failure', async () => {
    const WS = fakeWebSocketClass();
    const agent = new CpsAgent({ endpoints: [EP], fetch: agentFetch({ up: false }), WebSocket: WS });
    const r = recorder();
    const sub = agent.events({ ...r.handlers, reconnect: false });
    await sub.closed;
    assert.deepEqual(r.log.filter((x) => x.kind === 'error').map((x) => x.code), ['agent_unreachable']);
  });

  test('maxAttempts bounds the retries', async () => {
    const WS = fakeWebSocketClass();
    const f = agentFetch({ up: false });
    const agent = new CpsAgent({ endpoints: [EP], fetch: f, WebSocket: WS });
    const r = recorder();
    const sub = agent.events({ ...r.handlers, reconnect: { ...FAST, maxAttempts: 3 } });
    await sub.closed;
    assert.equal(r.log.filter((x) => x.kind === 'error').length, 4);
    assert.equal(f.count, 4, 'one discovery per attempt');
  });

  test('close() during a backoff cancels the pending reconnection', async () => {
    const WS = fakeWebSocketClass();
    const f = agentFetch({ up: false });
    const agent = new CpsAgent({ endpoints: [EP], fetch: f, WebSocket: WS });
    const r = recorder();
    const sub = agent.events({ ...r.handlers, reconnect: { initialDelay: 60000, maxDelay: 60000, jitter: 0 } });
    await r.until((x) => x.kind === 'state' && x.state === 'reconnecting' && x.info.delay === 60000);
    sub.close();
    await sub.closed; // would hang on a live 60 s timer if close() did not clear it (test runner would not exit)
    assert.equal(f.count, 1);
  });

  test('an AbortSignal closes the subscription', async () => {
    const WS = fakeWebSocketClass();
    const agent = new CpsAgent({ endpoints: [EP], fetch: agentFetch({ up: true }), WebSocket: WS });
    const ctl = new AbortController();
    const r = recorder();
    const sub = agent.events({ ...r.handlers, signal: ctl.signal, reconnect: FAST });
    const ws = await WS.nth(0);
    ws.open();
    ws.send({ type: 'hello', apiVersion: '1.0', status: STATUS });
    await r.until((x) => x.kind === 'state' && x.state === 'open');
    ctl.abort();
    await sub.closed;
    assert.equal(ws.closedWith, 1000);
  });

  test('garbage messages are reported, the subscription survives', async () => {
    const WS = fakeWebSocketClass();
    const agent = new CpsAgent({ endpoints: [EP], fetch: agentFetch({ up: true }), WebSocket: WS });
    const r = recorder();
    const sub = agent.events({ ...r.handlers, reconnect: FAST });
    const ws = await WS.nth(0);
    ws.open();
    ws.send({ type: 'hello', apiVersion: '1.0', status: STATUS });
    ws.send('not json');
    ws.send({ no: 'type' });
    ws.send({ type: 'card-inserted', reader: 'R' });
    await r.until((x) => x.kind === 'event' && x.type === 'card-inserted');
    assert.deepEqual(r.log.filter((x) => x.kind === 'error').map((x) => x.code), ['protocol_error', 'protocol_error']);
    assert.equal(sub.state, 'open');
    sub.close();
  });

  test('a throwing listener does not break the subscription', async () => {
    const WS = fakeWebSocketClass();
    const agent = new CpsAgent({ endpoints: [EP], fetch: agentFetch({ up: true }), WebSocket: WS });
    const seen = [];
    const uncaught = [];
    const saved = globalThis.reportError;
    globalThis.reportError = (e) => uncaught.push(e);
    let done;
    const gotSecond = new Promise((resolve) => { done = resolve; });
    const sub = agent.events({
      onEvent: (e) => {
        seen.push(e.type);
        if (e.type === 'card-removed') done();
        if (e.type === 'hello') throw new Error('listener bug');
      },
    });
    const ws = await WS.nth(0);
    ws.open();
    ws.send({ type: 'hello', apiVersion: '1.0', status: STATUS });
    ws.send({ type: 'card-removed' });
    await gotSecond;
    if (saved) globalThis.reportError = saved;
    else delete globalThis.reportError;
    assert.deepEqual(seen, ['hello', 'card-removed']);
    assert.equal(uncaught.length, 1);
    sub.close();
  });
});

describe('backoffDelay', () => {
  test('doubles up to the ceiling without jitter', () => {
    const cfg = { initialDelay: 100, maxDelay: 1000, factor: 2, jitter: 0 };
    assert.deepEqual([0, 1, 2, 3, 4, 10].map((a) => backoffDelay(a, cfg)), [100, 200, 400, 800, 1000, 1000]);
  });
  test('jitter takes off at most its share', () => {
    const cfg = { initialDelay: 1000, maxDelay: 1000, jitter: 0.5 };
    assert.equal(backoffDelay(0, cfg, () => 0), 1000);
    assert.equal(backoffDelay(0, cfg, () => 0.999999), 500);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(3, { initialDelay: 500, maxDelay: 30000 });
      assert.ok(d >= 2000 && d <= 4000, String(d));
    }
  });
  test('defaults: 500 ms, ×2, 30 s ceiling', () => {
    assert.equal(backoffDelay(0, {}, () => 0), 500);
    assert.equal(backoffDelay(20, {}, () => 0), 30000);
  });
});
