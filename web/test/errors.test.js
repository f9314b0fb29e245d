// The error vocabulary: every API code of docs/api.md is known and has texts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CpsAgentError, ErrorCode, REMEDIATION, base64ToBytes, bytesToBase64, sha256Base64 } from '../src/cpsagent.js';

const apiDoc = fileURLToPath(new URL('../../docs/api.md', import.meta.url));

test('every error code of docs/api.md is in ErrorCode with French and English texts', (t) => {
  if (!existsSync(apiDoc)) return t.skip('docs/api.md not beside the package');
  const doc = readFileSync(apiDoc, 'utf8');
  const section = doc.slice(doc.indexOf('## Errors'));
  const codes = [...section.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \|/gm)].map((m) => m[1]);
  assert.ok(codes.length >= 20, `found ${codes.length} codes in docs/api.md`);
  const known = new Set(Object.values(ErrorCode));
  for (const c of codes) {
    assert.ok(known.has(c), `ErrorCode lacks ${c}`);
    assert.ok(REMEDIATION[c], `REMEDIATION lacks ${c}`);
  }
});

test('every code has distinct, non-empty French and English remediation', () => {
  for (const code of Object.values(ErrorCode)) {
    const r = REMEDIATION[code];
    assert.ok(r, code);
    assert.ok(r.fr.length > 10 && r.en.length > 10, code);
    assert.notEqual(r.fr, r.en, code);
    const e = new CpsAgentError(code, 'x');
    assert.equal(e.name, 'CpsAgentError');
    assert.ok(e instanceof Error);
    assert.ok(!e.remediation.fr.includes('{'), `${code}: unfilled placeholder`);
    assert.equal(e.localizedMessage('fr'), e.remediation.fr);
    assert.equal(e.localizedMessage('en'), e.remediation.en);
  }
});

test('client-only codes are the documented ones', () => {
  for (const c of ['agent_unreachable', 'certificate_untrusted', 'local_network_access_denied', 'version_mismatch', 'insecure_context']) {
    assert.ok(Object.values(ErrorCode).includes(c), c);
  }
  assert.equal(ErrorCode.VERSION_MISMATCH, 'version_mismatch');
});

test('retryable flags', () => {
  assert.equal(new CpsAgentError('card_absent').retryable, true);
  assert.equal(new CpsAgentError('pin_blocked').retryable, false);
  assert.equal(new CpsAgentError('version_mismatch').retryable, false);
  assert.equal(new CpsAgentError('insecure_context').retryable, false);
});

test('base64 helpers round-trip and reject garbage', async () => {
  const b = new Uint8Array(70000).map((_, i) => (i * 7) & 0xff);
  const s = bytesToBase64(b);
  assert.equal(s, Buffer.from(b).toString('base64'));
  assert.deepEqual(base64ToBytes(s), b);
  assert.deepEqual(base64ToBytes(Buffer.from(b).toString('base64url')), b);
  assert.throws(() => base64ToBytes('a!b'), (e) => e.code === 'bad_request');
  assert.throws(() => base64ToBytes(5), (e) => e.code === 'bad_request');
  assert.equal(await sha256Base64(new TextEncoder().encode('abc')), 'ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=');
  assert.equal(await sha256Base64(new Blob(['abc'])), 'ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=');
});
