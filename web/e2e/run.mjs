#!/usr/bin/env node
// Browser end-to-end test of cpsagent with the demo portal, in headless
// Chromium driven by playwright-core. One command, from the repository:
//
//   node web/e2e/run.mjs          (or: cd web && npm run e2e)
//
// It builds cpsagent, starts pcscd when it is not running, inserts the
// virtual card (identity "medecin") in vpcd slot 0 under the cross-process
// lock /tmp/cpsagent-vpcd-slot0.lock (flock), starts the agent on PC/SC with
// the scripted pinentry (PIN 1234) and the portal's origin allowed, starts
// the demo portal on its own HTTPS origin plus a second, non-allowed one,
// and trusts both local CAs through an NSS database in a temporary HOME
// (no --ignore-certificate-errors). Then, in the browser:
//   1. login through the agent: identity verified by the portal's server;
//      screenshot build/artifacts/portal-logged-in.png;
//   2. card removal and insertion seen live on the page;
//   3. a document uploaded and signed (whole document, then digest mode),
//      the .p7s downloaded and checked by `openssl cms -verify`;
//   4. refusals: a non-allowed origin gets the agent's consent dialog (the
//      scripted pinentry refuses it), then origin_not_allowed with no PIN
//      prompt; a page whose Local Network Access permission is denied gets
//      local_network_access_denied; without the agent's CA in NSS the page
//      gets agent_unreachable (browsers do not tell an untrusted
//      certificate from a stopped agent).
// Any failure prints the processes' logs and exits 1.
//
// Environment: CPSAGENT_E2E_VPCD=127.0.0.1:35964 uses vpcd slot 1 instead
// (no lock); CPSAGENT_E2E_KEEP=1 keeps the work directory; CHROMIUM=path.

import { chromium } from 'playwright-core';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const ART = process.env.CPSAGENT_ARTIFACTS || path.join(ROOT, 'build', 'artifacts');
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'cpsagent-e2e-'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const VPCD = process.env.CPSAGENT_E2E_VPCD || '127.0.0.1:35963';
const SLOT0_LOCK = '/tmp/cpsagent-vpcd-slot0.lock';
const READER = VPCD.endsWith(':35964') ? 'Virtual PCD 00 01' : 'Virtual PCD 00 00';
const OUR_READER = `#readers li[data-reader="${READER}"]`;
const FAKE_PINENTRY = path.join(ROOT, 'internal', 'pinentry', 'testdata', 'fake-pinentry');
const PIN_LOG = path.join(WORK, 'pinentry.log');
const BROWSER_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
];
const STEP_TIMEOUT = 30000;

fs.mkdirSync(ART, { recursive: true });
fs.mkdirSync(path.join(WORK, 'logs'));

// ------------------------------------------------------------ reporting

const t0 = Date.now();
let passed = 0;
let currentStep = '';
function step(name) {
  currentStep = name;
  console.log(`\n▶ ${name}  (+${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}
function ok(what) {
  passed++;
  console.log(`  ✔ ${what}`);
}
function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  ok(what);
}

// ------------------------------------------------------------ processes

const procs = new Set();

/**
 * Starts a process whose output goes to WORK/logs/<name>.log. When ready is
 * a RegExp, resolves with its match on stdout/stderr.
 */
function start(name, cmd, args, { env = {}, ready, timeout = STEP_TIMEOUT } = {}) {
  const logPath = path.join(WORK, 'logs', `${name}.log`);
  const log = fs.createWriteStream(logPath, { flags: 'a' });
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const p = { name, child, logPath, exited: false, exitCode: null, out: '' };
  p.done = new Promise((resolve) => child.on('exit', (code, sig) => {
    p.exited = true;
    p.exitCode = code ?? sig;
    procs.delete(p);
    resolve(p.exitCode);
  }));
  procs.add(p);
  let waiter = null;
  const onData = (d) => {
    log.write(d);
    p.out += d.toString();
    if (waiter) {
      const m = waiter.re.exec(p.out);
      if (m) {
        waiter.resolve(m);
        waiter = null;
      }
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  child.on('error', (e) => onData(Buffer.from(`spawn error: ${e.message}\n`)));
  p.waitFor = (re, ms = timeout) => new Promise((resolve, reject) => {
    const m = re.exec(p.out);
    if (m) return resolve(m);
    const timer = setTimeout(() => reject(new Error(`${name}: no "${re}" within ${ms} ms\n${tail(p)}`)), ms);
    waiter = { re, resolve: (x) => { clearTimeout(timer); resolve(x); } };
    p.done.then((code) => { if (waiter) { clearTimeout(timer); reject(new Error(`${name} exited (${code}) before "${re}"\n${tail(p)}`)); } });
  });
  p.ready = ready ? p.waitFor(ready) : Promise.resolve(null);
  return p;
}

function tail(p, n = 40) {
  return p.out.split('\n').slice(-n).map((l) => `    ${p.name}| ${l}`).join('\n');
}

async function stop(p, ms = 8000) {
  if (!p || p.exited) return;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), ms);
  await p.done;
  clearTimeout(timer);
}

async function stopAll() {
  await Promise.all([...procs].map((p) => stop(p)));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.error}):\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, fn, ms = STEP_TIMEOUT) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function pinPrompts() {
  if (!fs.existsSync(PIN_LOG)) return 0;
  return fs.readFileSync(PIN_LOG, 'utf8').split('\n').filter((l) => l.startsWith('GETPIN')).length;
}
function consentDialogs() {
  if (!fs.existsSync(PIN_LOG)) return 0;
  return fs.readFileSync(PIN_LOG, 'utf8').split('\n').filter((l) => l === 'CONFIRM').length;
}
function pinLogEmpty() {
  return !fs.existsSync(PIN_LOG) || fs.readFileSync(PIN_LOG, 'utf8').trim() === '';
}

// ------------------------------------------------------------ setup

let lockHolder = null;
let pcscd = null;
let browsers = [];
let failingPage = null;

async function setup() {
  step('build cpsagent and prepare the virtual card');
  const bin = path.join(WORK, 'cpsagent');
  run('go', ['build', '-o', bin, './cmd/cpsagent'], { cwd: ROOT });
  run('go', ['build', '-o', path.join(WORK, 'vcardstate'), './web/e2e/vcardstate'], { cwd: ROOT });
  const cardState = path.join(WORK, 'card.json');
  const chain = path.join(WORK, 'test-pki-chain.pem');
  run(path.join(WORK, 'vcardstate'), ['-identity', 'medecin', '-state', cardState, '-chain', chain]);
  ok(`built ${bin}; card state and test PKI chain in ${WORK}`);

  step('PC/SC: pcscd and the vpcd slot');
  if (!fs.existsSync('/etc/reader.conf.d/vpcd')) throw new Error('vsmartcard-vpcd is not installed (/etc/reader.conf.d/vpcd missing)');
  if (spawnSync('pgrep', ['-x', 'pcscd']).status !== 0) {
    pcscd = start('pcscd', 'pcscd', ['--foreground']);
    await until('pcscd socket', () => fs.existsSync('/run/pcscd/pcscd.comm'));
    ok('started pcscd');
  } else {
    ok('pcscd already running');
  }
  if (VPCD === '127.0.0.1:35963') {
    lockHolder = start('slot0-lock', 'flock', ['--exclusive', '--wait', '240', SLOT0_LOCK, 'sh', '-c', 'echo locked; exec cat']);
    await lockHolder.waitFor(/locked/, 250000);
    ok(`holding ${SLOT0_LOCK} for vpcd slot 0`);
  } else {
    ok(`using vpcd ${VPCD} without lock`);
  }

  const [agentPort, portalPort, otherPort] = [await freePort(), await freePort(), await freePort()];
  const portal = `https://127.0.0.1:${portalPort}`;
  const other = `https://127.0.0.1:${otherPort}`;
  const agentURL = `https://127.0.0.1:${agentPort}`;

  step('virtual card, agent, demo portals');
  const vcardArgs = ['vcard', '--vpcd', VPCD, '--state', cardState];
  let vcard = start('vcard', bin, vcardArgs, { ready: /card inserted/ });
  await vcard.ready.catch((e) => {
    // vpcd takes one card per slot: say who holds it.
    const port = VPCD.split(':').pop();
    const holders = spawnSync('ss', ['-tnp'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(`:${port} `) || l.includes(`:${port}\t`));
    throw new Error(`${e.message}\nvpcd ${VPCD} connections (another process may use the slot without the lock):\n${holders.join('\n')}`);
  });
  ok(`virtual card inserted through vpcd ${VPCD}`);

  const agentState = path.join(WORK, 'agent-state');
  const agentHome = path.join(WORK, 'agent-home');
  fs.mkdirSync(agentHome);
  const agent = start('agent', bin, [
    'serve', '--listen', `127.0.0.1:${agentPort}`, '--state-dir', agentState,
    '--pinentry', FAKE_PINENTRY, '--allow-origin', portal,
  ], {
    env: { HOME: agentHome, XDG_CONFIG_HOME: path.join(agentHome, '.config'), FAKE_PINENTRY_PIN: '1234', FAKE_PINENTRY_MODE: 'confirm-cancel', FAKE_PINENTRY_LOG: PIN_LOG },
    ready: /listening on https:\/\/127\.0\.0\.1:\d+/,
  });
  await agent.ready;
  const agentCA = path.join(agentState, 'tls', 'ca.pem');
  check(fs.existsSync(agentCA), `agent up on ${agentURL}, CA ${agentCA}`);
  // What a page's no-cors probe (GET without Origin) receives: the library
  // can only tell "origin refused" from "agent unreachable" when this 403
  // carries no Cross-Origin-Resource-Policy header.
  const refusal = await new Promise((resolve, reject) => {
    https.get(`${agentURL}/v1/status`, { ca: fs.readFileSync(agentCA) }, (res) => {
      res.resume();
      resolve({ status: res.statusCode, corp: res.headers['cross-origin-resource-policy'] ?? null });
    }).on('error', reject);
  });
  check(refusal.status === 403, 'agent refuses a request without Origin (403)');
  check(refusal.corp === null, 'that 403 has no Cross-Origin-Resource-Policy header (a page can tell "refused" from "no agent")');

  const portalTLS = path.join(WORK, 'portal-tls');
  const portalArgs = (port) => ['demo-portal', '--listen', `127.0.0.1:${port}`, '--ca', chain, '--tls-dir', portalTLS, '--agent', agentURL];
  const demo = start('portal', bin, portalArgs(portalPort), { ready: /demo portal on https:\/\/\S+\// });
  await demo.ready;
  const demoOther = start('portal-other', bin, portalArgs(otherPort), { ready: /demo portal on https:\/\/\S+\// });
  await demoOther.ready;
  ok(`portal ${portal} (allowed by the agent), portal ${other} (not allowed)`);

  step('NSS databases in temporary HOMEs');
  const home = path.join(WORK, 'browser-home');
  const nss = (h, cas) => {
    const db = path.join(h, '.pki', 'nssdb');
    fs.mkdirSync(db, { recursive: true });
    run('certutil', ['-d', `sql:${db}`, '-N', '--empty-password']);
    for (const [nick, file] of cas) run('certutil', ['-d', `sql:${db}`, '-A', '-n', nick, '-t', 'C,,', '-i', file]);
    return run('certutil', ['-d', `sql:${db}`, '-L']);
  };
  const listed = nss(home, [['cpsagent local CA', agentCA], ['cpsagent demo portal CA', path.join(portalTLS, 'ca.pem')]]);
  check(listed.includes('cpsagent local CA') && listed.includes('cpsagent demo portal CA'), 'agent CA and portal CA trusted in the NSS database (C,,)');
  const homeNoAgentCA = path.join(WORK, 'browser-home-untrusted');
  nss(homeNoAgentCA, [['cpsagent demo portal CA', path.join(portalTLS, 'ca.pem')]]);

  return {
    refusal, bin, chain, cardState, vcardArgs, portal, other, agentURL, portalPort, home, homeNoAgentCA,
    get vcard() { return vcard; },
    async removeCard() { await stop(vcard); },
    async insertCard() {
      vcard = start('vcard', bin, vcardArgs, { ready: /card inserted/ });
      await vcard.ready;
    },
  };
}

async function launch(home, extraArgs = []) {
  const b = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...BROWSER_ARGS, ...extraArgs],
    env: { ...process.env, HOME: home },
  });
  browsers.push(b);
  return b;
}

async function openPortal(context, url) {
  const page = await context.newPage();
  failingPage = page;
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
  page.consoleLines = consoleLines;
  await page.goto(url + '/');
  await page.waitForSelector('body[data-ready="true"]', { timeout: STEP_TIMEOUT });
  return page;
}

/** Picks our reader when other cards (other tests' vpcd slots) are present. */
async function chooseReader(page) {
  if (await page.isVisible('#reader-select')) await page.selectOption('#reader-select', READER);
}

async function attr(page, selector, name) {
  return page.getAttribute(selector, name);
}

// ------------------------------------------------------------ scenario

async function scenario(env) {
  const browser = await launch(env.home);
  const context = await browser.newContext({ acceptDownloads: true, locale: 'fr-FR' });

  step('portal page finds the agent and the card');
  const page = await openPortal(context, env.portal);
  check(await page.evaluate(() => location.protocol === 'https:' && isSecureContext), 'portal page is https and a secure context (certificate trusted through NSS)');
  await page.waitForSelector('#agent-status[data-state="ok"]', { timeout: STEP_TIMEOUT });
  ok(`agent status: ${await page.textContent('#agent-status')}`);
  await page.waitForSelector('#events-status[data-state="ok"]', { timeout: STEP_TIMEOUT });
  await page.waitForSelector(`${OUR_READER}[data-card="present"]`, { timeout: STEP_TIMEOUT });
  await chooseReader(page);
  ok(`card in ${READER}: ${await page.textContent('#card-status')}; event stream open`);

  step('login with the card (PIN through the scripted pinentry)');
  const before = pinPrompts();
  await chooseReader(page);
  await page.click('#login-btn');
  await page.waitForSelector('#identity[data-verified="true"]', { timeout: STEP_TIMEOUT });
  const name = (await page.textContent('#id-name')).trim();
  check(name === 'KIT DOC0036791', `identity shown: ${name}`);
  check((await attr(page, '#identity', 'data-national-id')) === '899700367917', 'national id 899700367917 verified by the portal server');
  check((await page.textContent('#id-rpps')).trim() === '99700367917', 'RPPS 99700367917');
  check(pinPrompts() === before + 1, 'exactly one PIN prompt for the login');
  const session = await page.evaluate(async () => (await fetch('/api/session')).json());
  check(session.loggedIn === true && session.identity.nationalId === '899700367917', 'server session is logged in');
  await page.screenshot({ path: path.join(ART, 'portal-logged-in.png'), fullPage: true });
  ok(`screenshot ${path.relative(ROOT, path.join(ART, 'portal-logged-in.png'))}`);

  step('card removal and insertion, live');
  await env.removeCard();
  await page.waitForSelector(`${OUR_READER}[data-card="absent"]`, { state: 'attached', timeout: STEP_TIMEOUT });
  await page.waitForSelector(`#events-log li[data-type="card-removed"]`, { state: 'attached', timeout: STEP_TIMEOUT });
  ok(`removed: ${await page.textContent(OUR_READER)}`);
  await env.insertCard();
  await page.waitForSelector(`${OUR_READER}[data-card="present"]`, { state: 'attached', timeout: STEP_TIMEOUT });
  await page.waitForSelector('#events-log li[data-type="card-inserted"]', { state: 'attached', timeout: STEP_TIMEOUT });
  await chooseReader(page);
  ok(`inserted again: ${await page.textContent(OUR_READER)}`);

  step('sign an uploaded document (CAdES), download and verify the .p7s');
  const doc = path.join(WORK, 'ordonnance.txt');
  fs.writeFileSync(doc, `Ordonnance de démonstration\nPatient : TEST\n${new Date().toISOString()}\n`);
  for (const mode of ['document', 'digest']) {
    const n = pinPrompts();
    await chooseReader(page);
    await page.setInputFiles('#doc-file', doc);
    await page.check(`input[name="mode"][value="${mode}"]`);
    await page.evaluate(() => { document.getElementById('sign-result').dataset.valid = ''; });
    await page.click('#sign-btn');
    await page.waitForSelector('#sign-result[data-valid="true"], #sign-result[data-valid="false"], #error:not([hidden])', { timeout: STEP_TIMEOUT });
    const code = await attr(page, '#error', 'data-code');
    check((await attr(page, '#sign-result', 'data-valid')) === 'true', `${mode} mode: portal server verified the signature (cpsverify.VerifyCAdES)${code ? ` [error ${code}]` : ''}`);
    check((await page.textContent('#sig-signer')).includes('899700367917'), `${mode} mode: signer is the logged-in user`);
    check(pinPrompts() === n + 1, `${mode} mode: one PIN prompt`);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#p7s-link')]);
    const p7s = path.join(WORK, `ordonnance-${mode}.txt.p7s`);
    await download.saveAs(p7s);
    check(download.suggestedFilename() === 'ordonnance.txt.p7s', `downloaded ${download.suggestedFilename()} (${fs.statSync(p7s).size} bytes)`);
    const r = spawnSync('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', p7s, '-content', doc, '-CAfile', env.chain, '-purpose', 'any', '-out', '/dev/null'], { encoding: 'utf8' });
    check(r.status === 0 && /Verification successful/.test(r.stderr), `openssl cms -verify accepts the ${mode}-mode .p7s: ${r.stderr.trim()}`);
    const cli = spawnSync(env.bin, ['verify', 'cades', '--ca', env.chain, '--test-cards', 'allow', '--document', doc, p7s], { encoding: 'utf8' });
    check(cli.status === 0 && cli.stdout.startsWith('VALID CAdES signature'), `cpsagent verify accepts it too`);
    const tampered = path.join(WORK, 'tampered.txt');
    fs.writeFileSync(tampered, fs.readFileSync(doc, 'utf8') + 'x');
    const bad = spawnSync('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', p7s, '-content', tampered, '-CAfile', env.chain, '-purpose', 'any', '-out', '/dev/null'], { encoding: 'utf8' });
    check(bad.status !== 0, 'openssl refuses it for a modified document');
  }
  await page.screenshot({ path: path.join(ART, 'portal-signed.png'), fullPage: true });
  ok('screenshot build/artifacts/portal-signed.png');
  await context.close();

  step('refusal: a page on a non-allowed origin');
  fs.writeFileSync(PIN_LOG, '');
  const ctx2 = await browser.newContext();
  const p2 = await openPortal(ctx2, env.other);
  await p2.waitForSelector('#agent-status[data-state="error"]', { timeout: STEP_TIMEOUT });
  // The agent asked the holder (one consent dialog, refused by the scripted
  // pinentry); the page sees the refusal through the no-cors probe, whose
  // 403 (no Origin) is an opaque answer since it carries no CORP header.
  const want = 'origin_not_allowed';
  check((await attr(p2, '#agent-status', 'data-code')) === want, `discovery reports ${want}`);
  check(consentDialogs() === 1, 'the agent showed one consent dialog for the unknown site (refused)');
  await p2.click('#login-btn');
  await p2.waitForSelector('#error:not([hidden])', { timeout: STEP_TIMEOUT });
  await until('login attempt to finish', async () => !(await p2.isDisabled('#login-btn')));
  check((await attr(p2, '#error', 'data-code')) === want, `login attempt reports ${want}: "${(await p2.textContent('#error-text')).slice(0, 80)}…"`);
  const agentLog = fs.readFileSync(path.join(WORK, 'logs', 'agent.log'), 'utf8');
  const refusedLine = agentLog.split('\n').find((l) => l.includes(env.other) && /\b403\b/.test(l) && l.includes('origin_not_allowed'));
  check(refusedLine !== undefined, 'the agent refused the page\'s origin (403 origin_not_allowed in its log)');
  check(pinPrompts() === 0, 'no PIN prompt was shown (no GETPIN)');
  check(consentDialogs() === 1, 'no second consent dialog during the refusal cooldown');
  await p2.screenshot({ path: path.join(ART, 'portal-origin-refused.png'), fullPage: true });
  await ctx2.close();
  await browser.close();

  step('refusal: Local Network Access denied');
  fs.writeFileSync(PIN_LOG, '');
  // The portal's own origin (allowed by the agent), but Chromium is told
  // that its address is public, so reaching the loopback agent is a local
  // network request, and the page's permission for it is denied.
  const lnaBrowser = await launch(env.home, [`--ip-address-space-overrides=127.0.0.1:${env.portalPort}=public`]);
  const ctx3 = await lnaBrowser.newContext();
  const cdp = await lnaBrowser.newBrowserCDPSession();
  const probe = await ctx3.newPage();
  const { targetInfo } = await (await ctx3.newCDPSession(probe)).send('Target.getTargetInfo');
  await cdp.send('Browser.setPermission', {
    permission: { name: 'loopback-network' }, setting: 'denied', origin: env.portal, browserContextId: targetInfo.browserContextId,
  });
  await probe.close();
  const p3 = await openPortal(ctx3, env.portal);
  check((await p3.evaluate(async () => (await navigator.permissions.query({ name: 'loopback-network' })).state)) === 'denied', 'permission loopback-network is denied for the page');
  await p3.waitForSelector('#agent-status[data-state="error"]', { timeout: STEP_TIMEOUT });
  check((await attr(p3, '#agent-status', 'data-code')) === 'local_network_access_denied', 'discovery reports local_network_access_denied');
  await p3.click('#login-btn');
  await p3.waitForSelector('#error:not([hidden])', { timeout: STEP_TIMEOUT });
  await until('login attempt to finish', async () => !(await p3.isDisabled('#login-btn')));
  check((await attr(p3, '#error', 'data-code')) === 'local_network_access_denied', `login attempt reports local_network_access_denied: "${(await p3.textContent('#error-text')).slice(0, 80)}…"`);
  check(p3.consoleLines.some((l) => /loopback. address space/.test(l)), 'Chromium logged the LNA denial (not a generic failure)');
  check(pinLogEmpty(), 'no PIN prompt nor consent dialog was shown');
  await p3.screenshot({ path: path.join(ART, 'portal-lna-denied.png'), fullPage: true });
  await ctx3.close();
  // Same public page with the permission granted: the agent is reached.
  const ctx4 = await lnaBrowser.newContext();
  await ctx4.grantPermissions(['local-network-access'], { origin: env.portal });
  const p4 = await openPortal(ctx4, env.portal);
  await p4.waitForSelector('#agent-status[data-state="ok"]', { timeout: STEP_TIMEOUT });
  ok('with the permission granted, the same page reaches the agent');
  await ctx4.close();
  await lnaBrowser.close();

  step('agent certificate not trusted');
  const untrusted = await launch(env.homeNoAgentCA);
  const ctx5 = await untrusted.newContext();
  const p5 = await openPortal(ctx5, env.portal);
  await p5.waitForSelector('#agent-status[data-state="error"]', { timeout: STEP_TIMEOUT });
  const code5 = await attr(p5, '#agent-status', 'data-code');
  check(code5 === 'agent_unreachable', `without the agent CA in NSS: ${code5} (remediation covers the certificate)`);
  check(p5.consoleLines.some((l) => /ERR_CERT_AUTHORITY_INVALID/.test(l)), 'Chromium saw ERR_CERT_AUTHORITY_INVALID (only in its console, not visible to the page)');
  await ctx5.close();
  await untrusted.close();
}

// ------------------------------------------------------------ main

let exitCode = 0;
const watchdog = setTimeout(() => {
  console.error(`\n✘ e2e watchdog: still running after 10 minutes (step: ${currentStep})`);
  cleanup().finally(() => process.exit(1));
}, 10 * 60 * 1000);

async function cleanup() {
  for (const b of browsers) await b.close().catch(() => {});
  browsers = [];
  await stopAll();
  if (lockHolder && !lockHolder.exited) lockHolder.child.stdin.end();
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { cleanup().finally(() => process.exit(130)); });
}

try {
  const env = await setup();
  await scenario(env);
  console.log(`\n✔ e2e passed: ${passed} checks in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  console.log(`${passed} passed, 0 failed`);
} catch (err) {
  exitCode = 1;
  console.error(`\n✘ e2e FAILED in step "${currentStep}":\n  ${err.stack || err}`);
  if (failingPage && !failingPage.isClosed()) {
    const shot = path.join(ART, 'e2e-failure.png');
    await failingPage.screenshot({ path: shot, fullPage: true }).catch(() => {});
    console.error(`  screenshot: ${shot}`);
    console.error(`  page console:\n${(failingPage.consoleLines || []).slice(-20).map((l) => `    ${l}`).join('\n')}`);
  }
  for (const f of fs.readdirSync(path.join(WORK, 'logs'))) {
    const text = fs.readFileSync(path.join(WORK, 'logs', f), 'utf8').split('\n').slice(-30).join('\n    ');
    console.error(`  --- ${f} (last lines)\n    ${text}`);
  }
  console.log(`${passed} passed, 1 failed`);
} finally {
  clearTimeout(watchdog);
  await cleanup();
  if (process.env.CPSAGENT_E2E_KEEP === '1' || exitCode !== 0) console.log(`work directory kept: ${WORK}`);
  else fs.rmSync(WORK, { recursive: true, force: true });
}
process.exit(exitCode);
