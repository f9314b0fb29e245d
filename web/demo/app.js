// Demo portal page: what a portal needs to log in and sign with cpsagent.
// The portal's server issues the nonce and verifies the token and the
// signature (internal/demoportal); this page only carries them.
import { CpsAgent, CpsAgentError } from '/cpsagent.js';

const T = {
  fr: {
    title: 'Portail de démonstration',
    subtitle: "Connexion et signature avec la carte CPS, par l'agent local cpsagent",
    agentTitle: 'Agent et carte', agent: 'Agent CPS', events: 'Événements', card: 'Carte', eventLog: 'Journal des événements',
    reader: 'Lecteur', readers: 'Lecteurs', cards: (n) => `${n} cartes insérées : choisissez le lecteur`,
    loginTitle: 'Connexion',
    loginHelp: "Insérez votre carte CPS, puis cliquez : l'agent vous demandera votre code porteur dans sa propre fenêtre. Le portail ne voit jamais le code.",
    login: 'Se connecter avec la carte CPS', cancel: 'Annuler', logout: 'Se déconnecter',
    verified: 'Vérifié par le serveur du portail', nationalId: 'Identifiant national', cardType: 'Type de carte',
    issuer: 'Émetteur du certificat', checks: 'Contrôles du serveur',
    signTitle: 'Signer un document', signLocked: "Connectez-vous d'abord.", file: 'Document',
    mode: "Ce qui est envoyé à l'agent", modeDocument: "le document entier (l'agent calcule l'empreinte)",
    modeDigest: 'seulement son empreinte SHA-256 (documents volumineux)', sign: 'Signer (CAdES)',
    signer: 'Signataire', signingTime: 'Date de signature (déclarée)', algorithm: 'Algorithmes', chain: 'Chaîne vérifiée',
    download: 'Télécharger la signature (.p7s)',
    footer: "Démonstration : aucune donnée n'est conservée après l'arrêt du portail.",
    connected: (v) => `connecté (version ${v})`, searching: 'recherche…', open: 'en direct', connecting: 'connexion…',
    reconnecting: (s) => `reconnexion dans ${s} s…`, closed: 'arrêtés',
    noCard: 'aucune carte', noReader: 'aucun lecteur', cardIn: (g, s) => `carte ${g || ''} insérée${s ? ` (n° ${s})` : ''}`,
    waitingPin: "Saisissez votre code porteur dans la fenêtre de l'agent CPS…",
    signing: "Signature en cours : saisissez votre code porteur dans la fenêtre de l'agent CPS…",
    valid: 'Signature valide, vérifiée par le serveur du portail.', invalid: 'Signature refusée par le serveur du portail.',
    sameUser: "(l'utilisateur connecté)", otherUser: "(PAS l'utilisateur connecté)",
    errorTitle: 'Opération impossible', testCard: 'carte de test',
    check: {
      format: 'format web-eid:1.x', algorithm: 'algorithme autorisé', origin: 'origine de ce portail',
      nonce: 'défi à usage unique, non expiré', validity: 'certificat en cours de validité',
      keyUsage: "usage de clé d'authentification", chain: 'chaîne jusqu\'aux autorités de confiance',
      testCards: 'politique des cartes de test', signature: 'signature de SHA-256(origine) ‖ SHA-256(défi)',
    },
    signDescription: (n) => `Portail de démonstration : signature de « ${n} »`,
  },
  en: {
    title: 'Demo portal',
    subtitle: 'Log in and sign with the CPS card, through the local cpsagent',
    agentTitle: 'Agent and card', agent: 'CPS agent', events: 'Events', card: 'Card', eventLog: 'Event log',
    reader: 'Reader', readers: 'Readers', cards: (n) => `${n} cards inserted: choose the reader`,
    loginTitle: 'Log in',
    loginHelp: "Insert your CPS card, then click: the agent asks for your PIN in its own window. The portal never sees the PIN.",
    login: 'Log in with the CPS card', cancel: 'Cancel', logout: 'Log out',
    verified: "Verified by the portal's server", nationalId: 'National identifier', cardType: 'Card type',
    issuer: 'Certificate issuer', checks: 'Server checks',
    signTitle: 'Sign a document', signLocked: 'Log in first.', file: 'Document',
    mode: 'What is sent to the agent', modeDocument: 'the whole document (the agent computes the digest)',
    modeDigest: 'only its SHA-256 digest (large documents)', sign: 'Sign (CAdES)',
    signer: 'Signer', signingTime: 'Signing time (claimed)', algorithm: 'Algorithms', chain: 'Verified chain',
    download: 'Download the signature (.p7s)',
    footer: 'Demo: nothing is kept once the portal stops.',
    connected: (v) => `connected (version ${v})`, searching: 'searching…', open: 'live', connecting: 'connecting…',
    reconnecting: (s) => `reconnecting in ${s} s…`, closed: 'stopped',
    noCard: 'no card', noReader: 'no reader', cardIn: (g, s) => `${g || ''} card inserted${s ? ` (no. ${s})` : ''}`,
    waitingPin: "Type your PIN in the CPS agent's window…",
    signing: "Signing: type your PIN in the CPS agent's window…",
    valid: "Valid signature, verified by the portal's server.", invalid: "Signature refused by the portal's server.",
    sameUser: '(the logged-in user)', otherUser: '(NOT the logged-in user)',
    errorTitle: 'Operation failed', testCard: 'test card',
    check: {
      format: 'format web-eid:1.x', algorithm: 'allowed algorithm', origin: "this portal's origin",
      nonce: 'single-use, unexpired challenge', validity: 'certificate within its validity period',
      keyUsage: 'authentication key usage', chain: 'chain to the trust anchors',
      testCards: 'test-card policy', signature: 'signature of SHA-256(origin) ‖ SHA-256(challenge)',
    },
    signDescription: (n) => `Demo portal: signing "${n}"`,
  },
};

let lang = (navigator.language || 'fr').toLowerCase().startsWith('fr') ? 'fr' : 'en';
const $ = (id) => document.getElementById(id);
const t = (k, ...a) => {
  const v = T[lang][k];
  return typeof v === 'function' ? v(...a) : v;
};

function applyLang() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  $('lang-btn').textContent = lang === 'fr' ? 'English' : 'Français';
  renderCard();
  if (lastError) showError(lastError);
  if (shownIdentity) showIdentity(...shownIdentity);
}

function badge(el, state, text) {
  el.dataset.state = state;
  el.textContent = text;
}

// ------------------------------------------------------------ errors

let lastError = null;

/** Shows an agent error (CpsAgentError) or a portal error ({code, message}). */
function showError(err) {
  lastError = err;
  const box = $('error');
  let code;
  let text;
  if (err instanceof CpsAgentError) {
    code = err.code;
    text = err.remediation[lang];
  } else if (err && err.code && err.message && typeof err.message === 'object') {
    code = err.code;
    text = err.message[lang] || err.message.fr;
  } else {
    code = 'unexpected';
    text = String(err && err.message ? err.message : err);
  }
  box.dataset.code = code;
  $('error-title').textContent = t('errorTitle');
  $('error-text').textContent = text;
  $('error-code').textContent = code;
  box.hidden = false;
}

function clearError() {
  lastError = null;
  $('error').hidden = true;
  $('error').dataset.code = '';
}

/** Calls the portal's own API (same origin, session cookie). */
async function portal(method, path, body, headers = {}) {
  const init = { method, headers: { ...headers }, credentials: 'same-origin' };
  if (body !== undefined) {
    if (body instanceof Blob) {
      init.body = body;
      init.headers['Content-Type'] = 'application/octet-stream';
    } else {
      init.body = JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
  }
  const res = await fetch(path, init);
  const json = await res.json().catch(() => null);
  if (!res.ok) throw json && json.code ? json : { code: `http_${res.status}`, message: { fr: `Erreur ${res.status}`, en: `Error ${res.status}` } };
  return json;
}

// ------------------------------------------------------------ agent & events

const cfg = await portal('GET', '/api/config');
const agent = new CpsAgent({ endpoints: cfg.agentEndpoints, lang });
window.cpsDemo = { agent };

const readers = new Map(); // reader name → {cardPresent, generation, serialNumber}

function renderCard() {
  const el = $('card-status');
  const present = [...readers.entries()].filter(([, r]) => r.cardPresent);
  // Several cards: the user picks the reader, passed to authenticate/sign
  // (else the agent answers reader_ambiguous).
  const select = $('reader-select');
  const chosen = select.value;
  select.replaceChildren(...present.map(([name]) => new Option(name, name, false, name === chosen)));
  select.hidden = present.length < 2;
  $('reader-label').hidden = select.hidden;
  $('readers').replaceChildren(...[...readers.entries()].map(([name, r]) => {
    const li = document.createElement('li');
    li.dataset.reader = name;
    li.dataset.card = r.cardPresent ? 'present' : 'absent';
    li.textContent = `${name} — ${r.cardPresent ? t('cardIn', r.generation, r.serialNumber) : t('noCard')}`;
    return li;
  }));
  if (present.length > 1) {
    badge(el, 'present', t('cards', present.length));
  } else if (present.length === 1) {
    const [, r] = present[0];
    badge(el, 'present', t('cardIn', r.generation, r.serialNumber));
    el.dataset.reader = present[0][0];
  } else if (readers.size === 0 && el.dataset.state === 'unknown') {
    badge(el, 'unknown', '…');
  } else {
    badge(el, 'absent', readers.size === 0 ? t('noReader') : t('noCard'));
  }
}

function setReadersFromStatus(status) {
  readers.clear();
  for (const r of status.readers || []) {
    readers.set(r.name, { cardPresent: !!r.cardPresent, generation: r.card?.generation, serialNumber: r.card?.serialNumber });
  }
  if (readers.size === 0) $('card-status').dataset.state = 'absent';
  renderCard();
}

function logEvent(ev) {
  const li = document.createElement('li');
  li.dataset.type = ev.type;
  const time = new Date().toLocaleTimeString(lang === 'fr' ? 'fr-FR' : 'en-GB');
  li.textContent = `${time}  ${ev.type}${ev.reader ? `  ${ev.reader}` : ''}`;
  const log = $('events-log');
  log.prepend(li);
  while (log.children.length > 50) log.lastChild.remove();
}

async function connectAgent() {
  badge($('agent-status'), 'unknown', t('searching'));
  try {
    const st = await agent.connect();
    badge($('agent-status'), 'ok', t('connected', st.version));
    setReadersFromStatus(st);
  } catch (e) {
    badge($('agent-status'), 'error', e.code || 'error');
    $('agent-status').dataset.code = e.code || '';
    showError(e);
  }
}

agent.events({
  onStatus(status) {
    badge($('agent-status'), 'ok', t('connected', status.version));
    setReadersFromStatus(status);
    if (lastError && ['agent_unreachable', 'certificate_untrusted', 'timeout'].includes(lastError.code)) clearError();
  },
  onEvent(ev) {
    logEvent(ev);
    const r = readers.get(ev.reader) || { cardPresent: false };
    switch (ev.type) {
      case 'card-inserted':
      case 'identity-available':
        readers.set(ev.reader, { cardPresent: true, generation: ev.generation ?? r.generation, serialNumber: ev.serialNumber ?? r.serialNumber });
        break;
      case 'card-removed':
        readers.set(ev.reader, { cardPresent: false });
        break;
      case 'reader-added':
        readers.set(ev.reader, r);
        break;
      case 'reader-removed':
        readers.delete(ev.reader);
        break;
      default:
        return;
    }
    renderCard();
  },
  onStateChange(state, info) {
    const el = $('events-status');
    if (state === 'open') badge(el, 'ok', t('open'));
    else if (state === 'reconnecting' && info.delay !== undefined) badge(el, 'warn', t('reconnecting', Math.ceil(info.delay / 1000)));
    else if (state === 'closed') badge(el, 'error', t('closed'));
    else if (el.dataset.state !== 'warn') badge(el, 'unknown', t('connecting'));
  },
  onError(err) {
    $('events-status').dataset.code = err.code;
  },
});

// ------------------------------------------------------------ login

let pending = null; // AbortController of the running card operation

/** The reader chosen by the user when several hold a card. */
function chosenReader() {
  const select = $('reader-select');
  return select.hidden ? undefined : select.value || undefined;
}

function busy(on, message) {
  $('login-btn').disabled = on;
  $('sign-btn').disabled = on;
  $('cancel-btn').hidden = !on;
  if (on && message) {
    $('login-btn').dataset.busy = 'true';
    $('login-btn').title = message;
  } else {
    delete $('login-btn').dataset.busy;
  }
}

let shownIdentity = null; // [identity, info], re-rendered when the language changes

function showIdentity(identity, info) {
  shownIdentity = [identity, info];
  $('logged-out').hidden = true;
  $('logged-in').hidden = false;
  $('id-name').textContent = `${identity.givenName} ${identity.familyName}`;
  $('id-profession').textContent = identity.profession?.label ?? '';
  $('id-national').textContent = `${identity.nationalId} (${identity.nationalIdType?.label ?? ''})`;
  $('id-rpps').textContent = identity.rpps ?? identity.adeli ?? '—';
  const card = identity.card || {};
  $('id-card').textContent = [card.type, card.test ? t('testCard') : null].filter(Boolean).join(', ') || '—';
  $('id-initials').textContent = `${identity.givenName?.[0] ?? ''}${identity.familyName?.[0] ?? ''}`;
  $('id-issuer').textContent = info?.certificate?.issuerCommonName ?? info?.certificate?.issuer ?? '—';
  $('id-checks').replaceChildren(...(info?.checks ?? []).map((c) => {
    const li = document.createElement('li');
    li.dataset.check = c;
    li.textContent = T[lang].check[c] ?? c;
    return li;
  }));
  $('identity').dataset.verified = 'true';
  $('identity').dataset.nationalId = identity.nationalId;
  $('sign-locked').hidden = true;
  $('sign-form').hidden = false;
  document.body.dataset.loggedIn = 'true';
}

function showLoggedOut() {
  shownIdentity = null;
  $('logged-out').hidden = false;
  $('logged-in').hidden = true;
  $('identity').dataset.verified = 'false';
  $('sign-locked').hidden = false;
  $('sign-form').hidden = true;
  $('sign-result').hidden = true;
  document.body.dataset.loggedIn = 'false';
}

$('login-btn').addEventListener('click', async () => {
  clearError();
  pending = new AbortController();
  busy(true, t('waitingPin'));
  try {
    // 1. The server issues a nonce bound to this session.
    const { nonce } = await portal('POST', '/api/nonce');
    // 2. The agent asks for the PIN and the card signs origin + nonce.
    const token = await agent.authenticate(nonce, { signal: pending.signal, lang, reader: chosenReader() });
    // 3. The server verifies the token for its own origin and that nonce.
    const res = await portal('POST', '/api/login', { token });
    showIdentity(res.identity, res);
  } catch (e) {
    showError(e);
  } finally {
    pending = null;
    busy(false);
  }
});

$('cancel-btn').addEventListener('click', () => pending?.abort());

$('logout-btn').addEventListener('click', async () => {
  clearError();
  await portal('POST', '/api/logout', {}).catch(showError);
  showLoggedOut();
});

// ------------------------------------------------------------ signature

$('sign-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  clearError();
  const file = $('doc-file').files[0];
  if (!file) return;
  const mode = new FormData($('sign-form')).get('mode');
  pending = new AbortController();
  busy(true, t('signing'));
  $('sign-result').hidden = true;
  try {
    // 1. The document goes to the portal, which keeps it and its digest.
    const doc = await portal('POST', '/api/documents', file, { 'X-Filename': encodeURIComponent(file.name) });
    // 2. The card signs: whole document, or only the digest the server computed.
    const request = mode === 'digest'
      ? { documentDigest: doc.sha256, digestAlgorithm: 'SHA-256', format: 'cades' }
      : { document: file, format: 'cades' };
    const sig = await agent.sign(request, { description: t('signDescription', doc.name).slice(0, 200), signal: pending.signal, lang, reader: chosenReader() });
    // 3. The server verifies the .p7s against the stored document.
    const result = await portal('POST', `/api/documents/${encodeURIComponent(doc.id)}/signature`, { signature: sig.signature });
    showSignature(result);
  } catch (e) {
    showError(e);
  } finally {
    pending = null;
    busy(false);
  }
});

function showSignature(r) {
  const box = $('sign-result');
  box.dataset.valid = String(r.valid);
  $('sign-verdict').textContent = r.valid ? t('valid') : `${t('invalid')} ${r.error?.message?.[lang] ?? ''}`;
  $('sign-verdict').dataset.valid = String(r.valid);
  const s = r.signer;
  $('sig-signer').textContent = s ? `${s.givenName} ${s.familyName} — ${s.nationalId} ${r.signerIsLoggedInUser ? t('sameUser') : t('otherUser')}` : '—';
  $('sig-time').textContent = r.signingTime ? new Date(r.signingTime).toLocaleString(lang === 'fr' ? 'fr-FR' : 'en-GB') : '—';
  $('sig-alg').textContent = [r.digestAlgorithm, r.signatureAlgorithm, r.signingCertificateAttribute ? `signing-certificate-${r.signingCertificateAttribute}` : null].filter(Boolean).join(', ') || '—';
  $('sig-chain').textContent = (r.chain ?? []).join(' → ') || '—';
  $('sig-digest').textContent = r.document?.sha256Hex ?? '';
  const link = $('p7s-link');
  link.href = r.download;
  link.download = `${r.document?.name ?? 'document'}.p7s`;
  box.hidden = false;
}

// ------------------------------------------------------------ start

$('lang-btn').addEventListener('click', () => {
  lang = lang === 'fr' ? 'en' : 'fr';
  applyLang();
});

applyLang();
const session = await portal('GET', '/api/session').catch(() => ({ loggedIn: false }));
if (session.loggedIn) showIdentity(session.identity, null);
else showLoggedOut();
await connectAgent();
document.body.dataset.ready = 'true';
