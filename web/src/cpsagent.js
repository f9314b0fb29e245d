// cpsagent.js — browser client for the cpsagent local API (v1).
//
// A dependency-free ES module. It finds the agent on the loopback
// interface, checks its API version, reads the card, gets Web eID
// `web-eid:1.0` authentication tokens, asks for signatures, and follows card
// events over a WebSocket that reconnects by itself. Every failure is a
// CpsAgentError whose `code` is one of ErrorCode and whose `remediation`
// holds a French and an English text a portal can show as is.
//
// The API contract is docs/api.md; the integration guide is
// docs/integration.md.

/** Version of the local API this library speaks. */
export const API_VERSION = '1.0';
const API_MAJOR = 1;

/** Default TCP port of the agent: the first port of its range. */
export const DEFAULT_PORT = 47180;
/**
 * Ports the agent may listen on (docs/api.md "Discovery"): 47180 on a
 * single-user computer; on a shared host (RDS, Citrix) each user's agent
 * takes the first free port of 47180–47199.
 */
export const DEFAULT_PORTS = Object.freeze(Array.from({ length: 20 }, (_, i) => DEFAULT_PORT + i));
/** localStorage key of the port that answered last (per page origin). */
const PORT_STORAGE_KEY = 'cpsagent.port';
/** Timeout of the no-cors probe that tells a refused origin from no agent (no dialog can hold it). */
const NO_CORS_PROBE_TIMEOUT = 4000;

/** Maximum body size the agent accepts on /v1/sign. */
const MAX_SIGN_BODY = 16 * 1024 * 1024;
/** dataToSign is limited to 64 KiB by the API. */
const MAX_DATA_TO_SIGN = 64 * 1024;

/**
 * Every code a CpsAgentError can carry: the API's problem codes
 * (docs/api.md) followed by the failures only the client sees.
 */
export const ErrorCode = Object.freeze({
  BAD_REQUEST: 'bad_request',
  HOST_NOT_ALLOWED: 'host_not_allowed',
  ORIGIN_NOT_ALLOWED: 'origin_not_allowed',
  METHOD_NOT_ALLOWED: 'method_not_allowed',
  UNSUPPORTED_MEDIA_TYPE: 'unsupported_media_type',
  PAYLOAD_TOO_LARGE: 'payload_too_large',
  NOT_FOUND: 'not_found',
  RATE_LIMITED: 'rate_limited',
  AGENT_BUSY: 'agent_busy',
  READER_ABSENT: 'reader_absent',
  READER_AMBIGUOUS: 'reader_ambiguous',
  CARD_ABSENT: 'card_absent',
  CARD_REMOVED: 'card_removed',
  CARD_CHANGED: 'card_changed',
  CARD_RESET: 'card_reset',
  CARD_UNSUPPORTED: 'card_unsupported',
  OPERATION_NOT_SUPPORTED: 'operation_not_supported',
  PCSC_UNAVAILABLE: 'pcsc_unavailable',
  PIN_CANCELLED: 'pin_cancelled',
  PIN_INCORRECT: 'pin_incorrect',
  PIN_BLOCKED: 'pin_blocked',
  PIN_FORMAT: 'pin_format',
  PIN_UNAVAILABLE: 'pin_unavailable',
  CARD_ERROR: 'card_error',
  AGENT_SHUTTING_DOWN: 'agent_shutting_down',
  INTERNAL: 'internal',
  // Client-side failures.
  AGENT_UNREACHABLE: 'agent_unreachable',
  CERTIFICATE_UNTRUSTED: 'certificate_untrusted',
  LOCAL_NETWORK_ACCESS_DENIED: 'local_network_access_denied',
  VERSION_MISMATCH: 'version_mismatch',
  INSECURE_CONTEXT: 'insecure_context',
  TIMEOUT: 'timeout',
  ABORTED: 'aborted',
  PROTOCOL_ERROR: 'protocol_error',
});

// Codes after which trying the same thing again (possibly after the user
// acted on the remediation) can succeed without changing the page.
const RETRYABLE = new Set([
  'rate_limited', 'agent_busy', 'reader_absent', 'reader_ambiguous', 'card_absent', 'card_removed',
  'card_changed', 'card_reset', 'pcsc_unavailable', 'pin_cancelled', 'pin_incorrect', 'pin_format',
  'card_error', 'agent_shutting_down', 'internal',
  'agent_unreachable', 'certificate_untrusted', 'local_network_access_denied', 'timeout',
  'origin_not_allowed',
]);

const INTEGRATION_FR =
  "Erreur d'intégration entre ce site et l'agent CPS (agent trop ancien ?). Mettez à jour l'agent CPS ; si le problème persiste, contactez le support du site.";
const INTEGRATION_EN =
  'Integration error between this site and the CPS agent (agent too old?). Update the CPS agent; if the problem persists, contact the site\'s support.';

/**
 * Remediation texts, French and English, for every code. `{url}` is replaced
 * by the agent address tried, `{n}` by the number of PIN tries left.
 */
export const REMEDIATION = Object.freeze({
  bad_request: {
    fr: "La demande envoyée à l'agent CPS est invalide. Rechargez la page ; si le problème persiste, contactez le support du site.",
    en: 'The request sent to the CPS agent is invalid. Reload the page; if the problem persists, contact the site\'s support.',
  },
  host_not_allowed: {
    fr: "L'agent CPS a refusé l'adresse utilisée pour le joindre (seules 127.0.0.1, [::1] et localhost sont acceptées). Contactez le support du site.",
    en: 'The CPS agent refused the address used to reach it (only 127.0.0.1, [::1] and localhost are accepted). Contact the site\'s support.',
  },
  origin_not_allowed: {
    fr: "L'agent CPS de cet ordinateur n'autorise pas ce site à utiliser votre carte. Acceptez ce site dans la fenêtre de l'agent CPS s'il vous le propose, ou demandez à votre service informatique de l'ajouter aux sites autorisés de l'agent.",
    en: 'The CPS agent on this computer does not allow this site to use your card. Accept this site in the CPS agent\'s window if it asks, or ask your IT department to add it to the agent\'s allowed sites.',
  },
  method_not_allowed: { fr: INTEGRATION_FR, en: INTEGRATION_EN },
  unsupported_media_type: { fr: INTEGRATION_FR, en: INTEGRATION_EN },
  not_found: { fr: INTEGRATION_FR, en: INTEGRATION_EN },
  payload_too_large: {
    fr: "Le document est trop volumineux pour être envoyé à l'agent CPS (16 Mio au plus). Le site peut faire signer l'empreinte du document à la place.",
    en: 'The document is too large to be sent to the CPS agent (16 MiB at most). The site can have the document\'s digest signed instead.',
  },
  rate_limited: {
    fr: "Ce site a demandé trop d'opérations de carte en peu de temps. Patientez une minute, puis réessayez.",
    en: 'This site asked for too many card operations in a short time. Wait a minute, then try again.',
  },
  agent_busy: {
    fr: "La carte CPS est déjà utilisée par une autre opération (une fenêtre de saisie du code porteur est peut-être ouverte). Terminez-la, puis réessayez.",
    en: 'The CPS card is busy with another operation (a PIN window may be open). Finish it, then try again.',
  },
  reader_absent: {
    fr: 'Aucun lecteur de carte détecté. Branchez votre lecteur de carte, puis réessayez.',
    en: 'No card reader found. Plug in your card reader, then try again.',
  },
  reader_ambiguous: {
    fr: 'Plusieurs lecteurs contiennent une carte. Retirez les cartes inutiles ou choisissez le lecteur à utiliser, puis réessayez.',
    en: 'Several readers hold a card. Remove the cards you do not need or choose the reader to use, then try again.',
  },
  card_absent: {
    fr: 'Aucune carte dans le lecteur. Insérez votre carte CPS, puis réessayez.',
    en: 'No card in the reader. Insert your CPS card, then try again.',
  },
  card_removed: {
    fr: "La carte a été retirée pendant l'opération. Réinsérez-la et recommencez.",
    en: 'The card was removed during the operation. Insert it again and start over.',
  },
  card_changed: {
    fr: "La carte a été changée pendant l'opération. Laissez votre carte dans le lecteur et recommencez.",
    en: 'The card was changed during the operation. Leave your card in the reader and start over.',
  },
  card_reset: {
    fr: "Un autre logiciel a réinitialisé la carte pendant l'opération. Réessayez.",
    en: 'Another program reset the card during the operation. Try again.',
  },
  card_unsupported: {
    fr: "La carte insérée n'est pas une carte de professionnel de santé reconnue (CPS3, CPS4). Insérez votre carte CPS.",
    en: 'The card inserted is not a recognised health professional card (CPS3, CPS4). Insert your CPS card.',
  },
  operation_not_supported: {
    fr: "Cette opération n'est pas possible avec cette carte ou ce mode de lecture (par exemple une signature en sans contact). Insérez la carte dans un lecteur à contact.",
    en: 'This operation is not possible with this card or reading mode (for example signing over contactless). Insert the card in a contact reader.',
  },
  pcsc_unavailable: {
    fr: "Le service de cartes à puce de l'ordinateur ne répond pas. Redémarrez-le (service « Carte à puce » sous Windows, pcscd sous Linux) ou redémarrez l'ordinateur.",
    en: 'The computer\'s smart card service is not responding. Restart it ("Smart Card" service on Windows, pcscd on Linux) or restart the computer.',
  },
  pin_cancelled: {
    fr: 'La saisie du code porteur a été annulée ou a expiré. Recommencez quand vous êtes prêt.',
    en: 'PIN entry was cancelled or timed out. Start again when you are ready.',
  },
  pin_incorrect: {
    fr: 'Code porteur incorrect. Il reste {n} essai(s) avant le blocage de la carte.',
    en: 'Wrong PIN. {n} attempt(s) left before the card is blocked.',
  },
  pin_blocked: {
    fr: "Le code porteur de la carte est bloqué. Débloquez-le avec votre code de déblocage (logiciel CPS Gestion) ou contactez le service de gestion des cartes CPS de l'ANS.",
    en: 'The card\'s PIN is blocked. Unblock it with your unblocking code (CPS Gestion software) or contact the ANS CPS card service.',
  },
  pin_format: {
    fr: "Le code porteur saisi n'a pas le bon format (4 chiffres) ; rien n'a été envoyé à la carte. Recommencez.",
    en: 'The PIN typed does not have the right format (4 digits); nothing was sent to the card. Start again.',
  },
  pin_unavailable: {
    fr: "L'agent CPS n'a pas pu afficher la fenêtre de saisie du code porteur. Vérifiez que vous êtes dans une session de bureau ouverte, puis redémarrez l'agent CPS.",
    en: 'The CPS agent could not show the PIN window. Check that you are in an open desktop session, then restart the CPS agent.',
  },
  card_error: {
    fr: "La carte a renvoyé une erreur inattendue. Retirez-la, réinsérez-la et recommencez ; si cela se reproduit, la carte est peut-être défectueuse.",
    en: 'The card returned an unexpected error. Remove it, insert it again and start over; if it happens again, the card may be faulty.',
  },
  agent_shutting_down: {
    fr: "L'agent CPS est en train de s'arrêter. Relancez-le, puis réessayez.",
    en: 'The CPS agent is shutting down. Start it again, then try again.',
  },
  internal: {
    fr: "Erreur interne de l'agent CPS. Réessayez ; si cela se reproduit, redémarrez l'agent CPS et contactez le support.",
    en: 'Internal error in the CPS agent. Try again; if it happens again, restart the CPS agent and contact support.',
  },
  agent_unreachable: {
    fr: "Impossible de joindre l'agent CPS sur cet ordinateur. 1) Vérifiez qu'il est lancé (icône près de l'horloge) et lancez-le sinon. 2) S'il est lancé, le navigateur ne reconnaît peut-être pas son certificat : ouvrez {url} dans un nouvel onglet ; si une alerte de sécurité s'affiche, réparez l'installation de l'agent CPS puis redémarrez le navigateur. 3) Si le navigateur a demandé d'autoriser l'accès aux applications de cet appareil, acceptez. 4) Si l'agent fonctionne avec d'autres sites, il n'autorise peut-être pas celui-ci : demandez à votre service informatique de l'ajouter. Puis réessayez.",
    en: 'The CPS agent on this computer cannot be reached. 1) Check that it is running (icon near the clock) and start it if not. 2) If it is running, the browser may not trust its certificate: open {url} in a new tab; if a security warning appears, repair the CPS agent installation, then restart the browser. 3) If the browser asked to allow access to apps on this device, accept. 4) If the agent works with other sites, it may not allow this one: ask your IT department to add it. Then try again.',
  },
  certificate_untrusted: {
    fr: "Le navigateur ne reconnaît pas le certificat de l'agent CPS. Réparez l'installation de l'agent CPS (elle installe son certificat dans les navigateurs), puis redémarrez le navigateur.",
    en: 'The browser does not trust the CPS agent\'s certificate. Repair the CPS agent installation (it installs its certificate in the browsers), then restart the browser.',
  },
  local_network_access_denied: {
    fr: "Le navigateur interdit à ce site d'accéder aux applications de cet ordinateur (« accès au réseau local »). Cliquez sur l'icône à gauche de l'adresse du site, autorisez l'accès aux applications de cet appareil, puis rechargez la page. Votre service informatique peut l'autoriser pour tous les postes (stratégie LoopbackNetworkAllowedForUrls ou LocalNetworkAccessAllowedForUrls).",
    en: 'The browser does not allow this site to reach apps on this computer ("local network access"). Click the icon left of the site address, allow access to apps on this device, then reload the page. Your IT department can allow it on every computer (LoopbackNetworkAllowedForUrls or LocalNetworkAccessAllowedForUrls policy).',
  },
  version_mismatch: {
    fr: "La version de l'agent CPS installée sur cet ordinateur n'est pas compatible avec ce site. Installez la dernière version de l'agent CPS.",
    en: 'The version of the CPS agent installed on this computer is not compatible with this site. Install the latest version of the CPS agent.',
  },
  insecure_context: {
    fr: "Cette page n'est pas sécurisée (adresse en http://) : le navigateur interdit d'y utiliser l'agent CPS. Ouvrez le site avec une adresse en https://.",
    en: 'This page is not secure (http:// address): the browser does not let it use the CPS agent. Open the site with an https:// address.',
  },
  timeout: {
    fr: "L'agent CPS n'a pas répondu à temps. Réessayez ; si cela se reproduit, redémarrez l'agent CPS.",
    en: 'The CPS agent did not answer in time. Try again; if it happens again, restart the CPS agent.',
  },
  aborted: {
    fr: 'Opération annulée.',
    en: 'Operation cancelled.',
  },
  protocol_error: {
    fr: "Réponse inattendue du programme qui écoute à l'adresse de l'agent CPS (un autre logiciel utilise peut-être son port). Redémarrez l'agent CPS ; si cela persiste, contactez votre service informatique.",
    en: 'Unexpected answer from the program listening at the CPS agent\'s address (another program may be using its port). Restart the CPS agent; if it persists, contact your IT department.',
  },
});

/** Error thrown by every method of this library. */
export class CpsAgentError extends Error {
  /**
   * @param {string} code one of ErrorCode (or a code from a newer agent)
   * @param {string} message English description
   * @param {object} [extra] status, detail, detailFr, title, field, triesLeft, endpoint, cause …
   */
  constructor(code, message, extra = {}) {
    super(message || code, extra.cause !== undefined ? { cause: extra.cause } : undefined);
    this.name = 'CpsAgentError';
    /** @type {string} */
    this.code = code;
    /** HTTP status of the agent's answer, 0 when there was none. */
    this.status = extra.status ?? 0;
    this.detail = extra.detail ?? null;
    this.detailFr = extra.detailFr ?? null;
    this.title = extra.title ?? null;
    this.field = extra.field ?? null;
    this.triesLeft = extra.triesLeft ?? null;
    /** Agent base URL involved, when there is one. */
    this.endpoint = extra.endpoint ?? null;
    /** Every extra member of the problem document, as received. */
    this.problem = extra.problem ?? null;
    this.retryable = RETRYABLE.has(code);
    this.remediation = remediationFor(code, this);
  }

  /** The remediation text in `lang` ('fr' or 'en'). */
  localizedMessage(lang = 'fr') {
    return lang === 'en' ? this.remediation.en : this.remediation.fr;
  }
}

function remediationFor(code, e) {
  const entry = REMEDIATION[code];
  const url = e.endpoint ? `${e.endpoint}/v1/status` : `https://127.0.0.1:${DEFAULT_PORT}/v1/status`;
  const fill = (s) => s.replaceAll('{url}', url).replaceAll('{n}', e.triesLeft == null ? '?' : String(e.triesLeft));
  if (!entry) {
    // A code this library does not know (newer agent): show the agent's own texts.
    return {
      fr: e.detailFr || e.detail || REMEDIATION.internal.fr,
      en: e.detail || REMEDIATION.internal.en,
    };
  }
  const out = { fr: fill(entry.fr), en: fill(entry.en) };
  if (code === 'pin_incorrect' && e.triesLeft === 1) {
    out.fr += ' Attention : un nouvel échec bloquera la carte.';
    out.en += ' Careful: one more failure will block the card.';
  }
  return out;
}

// ---------------------------------------------------------------- base64

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Encodes bytes as standard base64 with padding. */
export function bytesToBase64(bytes) {
  let s = '';
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + chunk));
  }
  return btoa(s);
}

/** Decodes standard or URL-safe base64 (padding optional) into bytes. */
export function base64ToBytes(b64) {
  const s = normaliseBase64(b64);
  if (s === null) throw new CpsAgentError('bad_request', 'invalid base64');
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function normaliseBase64(s) {
  if (typeof s !== 'string') return null;
  let t = s.replace(/[\r\n\t ]/g, '');
  if (/[-_]/.test(t)) t = t.replaceAll('-', '+').replaceAll('_', '/');
  if (!t.includes('=') && t.length % 4 !== 0) t += '='.repeat((4 - (t.length % 4)) % 4);
  return B64.test(t) ? t : null;
}

/**
 * Converts ArrayBuffer, a typed array / DataView, a Blob (or File) or a
 * base64 string into standard base64.
 * @returns {Promise<{b64: string, length: number}>}
 */
async function toBase64(data, field) {
  if (typeof data === 'string') {
    const s = normaliseBase64(data);
    if (s === null) throw new CpsAgentError('bad_request', `${field}: not base64`, { field });
    const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
    return { b64: s, length: (s.length / 4) * 3 - pad };
  }
  let bytes;
  if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
  else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  else if (typeof Blob !== 'undefined' && data instanceof Blob) bytes = new Uint8Array(await data.arrayBuffer());
  else throw new CpsAgentError('bad_request', `${field}: expected ArrayBuffer, Uint8Array, Blob or base64 string`, { field });
  return { b64: bytesToBase64(bytes), length: bytes.length };
}

/** SHA-256 of ArrayBuffer / typed array / Blob / base64 string, as base64 (WebCrypto). */
export async function sha256Base64(data) {
  const { b64 } = await toBase64(data, 'data');
  const digest = await crypto.subtle.digest('SHA-256', base64ToBytes(b64));
  return bytesToBase64(new Uint8Array(digest));
}

// ---------------------------------------------------------------- helpers

/**
 * Exponential backoff with jitter: the ceiling doubles (factor) from
 * initialDelay up to maxDelay, and a random share (jitter, 0..1) is taken
 * off so that many pages do not reconnect in step.
 */
export function backoffDelay(attempt, cfg = {}, random = Math.random) {
  const initial = cfg.initialDelay ?? 500;
  const max = cfg.maxDelay ?? 30000;
  const factor = cfg.factor ?? 2;
  const jitter = Math.min(Math.max(cfg.jitter ?? 0.5, 0), 1);
  const ceiling = Math.min(max, initial * Math.pow(factor, Math.max(0, attempt)));
  return Math.round(ceiling * (1 - jitter * random()));
}

/** Parses "1.0" → [1, 0]; null if malformed. */
function parseVersion(v) {
  if (typeof v !== 'string') return null;
  const m = /^(\d+)\.(\d+)(?:\.\d+)?$/.exec(v);
  return m ? [Number(m[1]), Number(m[2])] : null;
}

function isIPLiteral(host) {
  return /^\[.*\]$/.test(host) || /^\d{1,3}(\.\d{1,3}){3}$/.test(host);
}

// TLS verification failures as reported by Node's fetch (undici) in
// err.cause.code; browsers give no such detail.
const CERT_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID', 'CERT_UNTRUSTED', 'CERT_REVOKED', 'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH', 'INVALID_CA',
]);

function causeCode(err) {
  for (let e = err, i = 0; e && i < 4; e = e.cause, i++) {
    if (typeof e.code === 'string') return e.code;
  }
  return null;
}

/**
 * Links an optional caller signal and a timeout into one AbortSignal.
 * Returns the signal, a function telling whether the timeout fired, and a
 * cleanup function.
 */
function linkSignal(signal, timeoutMs) {
  const ctl = new AbortController();
  let timedOut = false;
  let timer = null;
  const onAbort = () => ctl.abort(signal.reason);
  if (signal) {
    if (signal.aborted) ctl.abort(signal.reason);
    else signal.addEventListener('abort', onAbort, { once: true });
  }
  if (timeoutMs > 0 && timeoutMs < Infinity) {
    timer = setTimeout(() => {
      timedOut = true;
      ctl.abort(new CpsAgentError('timeout', `no answer within ${timeoutMs} ms`));
    }, timeoutMs);
  }
  return {
    signal: ctl.signal,
    timedOut: () => timedOut,
    cleanup: () => {
      if (timer !== null) clearTimeout(timer);
      if (signal) signal.removeEventListener('abort', onAbort);
    },
  };
}

function abortedError(signal) {
  const reason = signal?.reason;
  if (reason instanceof CpsAgentError) return reason;
  return new CpsAgentError('aborted', 'operation aborted', { cause: reason });
}

/** Resolves like p, or rejects with `aborted` when signal fires first. */
function raceSignal(p, signal) {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(abortedError(signal));
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(abortedError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e) => { signal.removeEventListener('abort', onAbort); reject(e); },
    );
  });
}

// Precedence when every endpoint failed: the most specific explanation wins.
const DISCOVERY_PRECEDENCE = [
  'insecure_context', 'version_mismatch', 'local_network_access_denied', 'origin_not_allowed',
  'certificate_untrusted', 'protocol_error', 'host_not_allowed', 'timeout', 'agent_unreachable',
];

function pickError(errors) {
  let best = null;
  let rank = Infinity;
  for (const e of errors) {
    let r = DISCOVERY_PRECEDENCE.indexOf(e.code);
    if (r < 0) r = DISCOVERY_PRECEDENCE.length;
    if (r < rank) { best = e; rank = r; }
  }
  return best;
}

// ---------------------------------------------------------------- client

/**
 * Client of the local cpsagent.
 *
 * @example
 * const agent = new CpsAgent();
 * const token = await agent.authenticate(nonceFromMyServer);
 */
export class CpsAgent {
  /**
   * @param {object} [options] see cpsagent.d.ts (CpsAgentOptions)
   */
  constructor(options = {}) {
    this._options = options;
    const ports = options.ports ?? DEFAULT_PORTS;
    for (const p of ports) {
      if (!Number.isInteger(p) || p < 1 || p > 65535) throw new TypeError(`cpsagent: invalid port ${p}`);
    }
    /** Candidate base URLs, in order of preference. */
    this._endpoints = options.endpoints ?? null;
    this._ports = [...new Set(ports)];
    this._timeout = options.timeout ?? 15000;
    this._interactiveTimeout = options.interactiveTimeout ?? 300000;
    // A first visit may wait for the agent's consent window (60 s) before
    // /v1/status answers: a probe must outlive it, or the window would
    // close when the page gives up.
    this._probeTimeout = options.probeTimeout ?? 70000;
    this._fallbackDelay = options.fallbackDelay ?? 4000;
    this._storage = options.rememberPort === false ? null : (options.storage !== undefined ? options.storage : defaultStorage());
    this._lang = options.lang ?? defaultLang();
    this._requiredCapabilities = options.requiredCapabilities ?? [];
    this._fetchImpl = options.fetch ?? null;
    this._WebSocketImpl = options.WebSocket ?? null;
    this._found = null; // Promise<{endpoint, status}> while discovery runs or after it succeeded
    /** Base URL of the agent found, or null before discovery. */
    this.endpoint = null;
    /** Last /v1/status answer seen (discovery or hello). */
    this.lastStatus = null;
  }

  /** Candidate base URLs tried by discovery, in order. */
  async candidates() {
    const [first, rest] = await this._tiers();
    return [...first, ...rest];
  }

  /**
   * Discovery's two tiers of base URLs, each in order of preference: the
   * remembered port and the first configured port (47180), then the other
   * ports. Explicit endpoints are all in the first tier.
   */
  async _tiers() {
    const clean = (list) => list.map((u) => String(u).replace(/\/+$/, ''));
    let list = this._endpoints;
    if (typeof list === 'function') list = await list();
    if (list) return [clean(list), []];
    const ports = [...this._ports];
    const remembered = this._rememberedPort();
    let nFirst = Math.min(1, ports.length);
    if (remembered !== null && ports.includes(remembered) && remembered !== ports[0]) {
      ports.splice(ports.indexOf(remembered), 1);
      ports.unshift(remembered);
      nFirst = 2;
    }
    const urls = (ps) => ps.flatMap((p) => [`https://127.0.0.1:${p}`, `https://[::1]:${p}`]);
    return [urls(ports.slice(0, nFirst)), urls(ports.slice(nFirst))];
  }

  _rememberedPort() {
    try {
      const v = this._storage?.getItem(PORT_STORAGE_KEY);
      const p = Number(v);
      return v && Number.isInteger(p) && p >= 1 && p <= 65535 ? p : null;
    } catch {
      return null; // storage disabled (sandboxed frame, blocked cookies)
    }
  }

  _rememberPort(endpoint) {
    if (this._endpoints || !this._storage) return;
    try {
      const port = Number(new URL(endpoint).port);
      if (this._ports.includes(port)) this._storage.setItem(PORT_STORAGE_KEY, String(port));
    } catch {
      // storage full or disabled: discovery simply starts from 47180 next time
    }
  }

  _fetch(url, init) {
    const f = this._fetchImpl ?? globalThis.fetch;
    if (typeof f !== 'function') throw new CpsAgentError('insecure_context', 'fetch is not available');
    return f.call(globalThis, url, init);
  }

  _checkContext() {
    if (globalThis.isSecureContext === false) {
      throw new CpsAgentError('insecure_context', 'the page is not a secure context (http://): browsers do not let it reach the agent');
    }
  }

  /**
   * Finds the agent (once; the result is cached), checks its API version and
   * required capabilities, and returns its status.
   * @returns {Promise<object>} the /v1/status answer
   */
  async connect({ signal } = {}) {
    const found = await this._ready(signal);
    return found.status;
  }

  /** Forgets the agent found, so that the next call runs discovery again. */
  reset() {
    this._found = null;
    this.endpoint = null;
  }

  _ready(signal) {
    this._checkContext();
    if (!this._found) {
      const p = this._discover();
      this._found = p;
      p.then(
        (f) => { if (this._found === p) this.endpoint = f.endpoint; },
        () => { if (this._found === p) this._found = null; },
      );
    }
    return raceSignal(this._found, signal);
  }

  /**
   * Probes the first tier at once; the other ports as soon as the whole
   * first tier failed, or after fallbackDelay. The first address in order
   * of preference that answers wins; a lower one that answered is taken
   * over a higher one still pending once fallbackDelay has passed (a
   * program squatting a port and never answering). A pending probe may be
   * the user's own agent showing its consent window, hence the long
   * probeTimeout.
   */
  async _discover() {
    const [first, rest] = await this._tiers();
    const all = [...first, ...rest];
    if (all.length === 0) throw new CpsAgentError('agent_unreachable', 'no agent address configured');
    const ctl = new AbortController();
    const results = all.map(() => null);
    return new Promise((resolve, reject) => {
      let done = false;
      let launched = 0;
      let graceOver = false;
      const finish = (fn) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        ctl.abort();
        fn();
      };
      const launch = (to) => {
        for (let i = launched; i < to; i++) {
          const ep = all[i];
          this._probe(ep, ctl.signal).then(
            (status) => { results[i] = { ok: true, ep, status }; decide(); },
            (error) => { results[i] = { ok: false, ep, error }; decide(); },
          );
        }
        launched = Math.max(launched, to);
      };
      const decide = () => {
        if (done) return;
        if (launched < all.length && results.slice(0, launched).every((r) => r && !r.ok)) launch(all.length);
        for (let i = 0; i < launched; i++) {
          const r = results[i];
          if (r === null) {
            if (graceOver) continue;
            return; // a preferred address may still answer
          }
          if (r.ok) {
            this.lastStatus = r.status;
            this._rememberPort(r.ep);
            finish(() => resolve({ endpoint: r.ep, status: r.status }));
            return;
          }
        }
        if (launched === all.length && results.every((r) => r !== null)) {
          finish(() => reject(pickError(results.map((r) => r.error))));
        }
      };
      const timer = setTimeout(() => {
        if (done) return;
        graceOver = true;
        launch(all.length);
        decide();
      }, this._fallbackDelay);
      launch(first.length > 0 ? first.length : all.length);
    });
  }

  async _probe(endpoint, outer) {
    const status = await this._request('GET', '/v1/status', undefined, {
      endpoint, signal: outer, timeout: this._probeTimeout,
    });
    checkStatus(status, endpoint, this._requiredCapabilities);
    return status;
  }

  /**
   * One HTTP exchange with the agent. Never retried for POST: a retry could
   * show a second PIN prompt.
   */
  async _request(method, path, body, { endpoint, signal, timeout, retry = false } = {}) {
    this._checkContext();
    let ep = endpoint;
    let fromCache = false;
    if (!ep) {
      fromCache = this._found !== null;
      ep = (await this._ready(signal)).endpoint;
    }
    const url = ep + path;
    const link = linkSignal(signal, timeout ?? this._timeout);
    const init = {
      method,
      signal: link.signal,
      mode: 'cors',
      credentials: 'omit',
      cache: 'no-store',
      referrerPolicy: 'no-referrer',
      redirect: 'error',
    };
    const host = new URL(ep).hostname;
    if (!isIPLiteral(host)) init.targetAddressSpace = 'loopback';
    if (body !== undefined) {
      init.headers = { 'Content-Type': 'application/json' };
      init.body = body;
    }
    let res;
    let text;
    try {
      res = await this._fetch(url, init);
      text = await res.text();
    } catch (err) {
      link.cleanup();
      if (signal?.aborted) throw abortedError(signal);
      if (link.timedOut()) throw new CpsAgentError('timeout', `${method} ${path}: no answer within ${timeout ?? this._timeout} ms`, { endpoint: ep });
      if (err instanceof CpsAgentError) throw err;
      const e = await this._classify(err, ep);
      if (!endpoint && this._found) this.reset();
      if (retry && fromCache && e.code === 'agent_unreachable') {
        // The agent may have restarted elsewhere: discover again, once.
        return this._request(method, path, body, { signal, timeout, retry: false });
      }
      throw e;
    }
    link.cleanup();
    let json;
    try {
      json = text === '' ? null : JSON.parse(text);
    } catch {
      throw new CpsAgentError('protocol_error', `${method} ${path}: answer is not JSON (HTTP ${res.status})`, { status: res.status, endpoint: ep });
    }
    if (!res.ok) throw problemError(json, res.status, ep);
    if (json === null || typeof json !== 'object') {
      throw new CpsAgentError('protocol_error', `${method} ${path}: empty or non-object answer`, { status: res.status, endpoint: ep });
    }
    return json;
  }

  /**
   * Explains a fetch() rejection. Browsers give one opaque TypeError for
   * "nothing listens", "certificate not trusted", "CORS refused" and "Local
   * Network Access denied"; two checks tell some of them apart:
   *  - the Local Network Access permission state (denied → LNA);
   *  - a no-cors GET: it resolves (opaque) when a TLS server answered, so
   *    the failure was the agent's CORS refusal of this origin.
   */
  async _classify(err, endpoint) {
    const code = causeCode(err);
    if (code && CERT_ERRORS.has(code)) {
      return new CpsAgentError('certificate_untrusted', `TLS certificate of ${endpoint} not trusted (${code})`, { endpoint, cause: err });
    }
    if (code) {
      return new CpsAgentError('agent_unreachable', `cannot reach ${endpoint} (${code})`, { endpoint, cause: err });
    }
    if ((await localNetworkPermission()) === 'denied') {
      return new CpsAgentError('local_network_access_denied', `the browser's Local Network Access permission is denied for this page; ${endpoint} was not contacted`, { endpoint, cause: err });
    }
    if (await this._answersNoCors(endpoint)) {
      return new CpsAgentError('origin_not_allowed', `${endpoint} answered but refused this origin (no CORS headers)`, { endpoint, cause: err, status: 403 });
    }
    return new CpsAgentError('agent_unreachable', `cannot reach ${endpoint}: not running, certificate not trusted, or access not granted`, { endpoint, cause: err });
  }

  async _answersNoCors(endpoint) {
    const link = linkSignal(undefined, Math.min(this._probeTimeout, NO_CORS_PROBE_TIMEOUT));
    try {
      const init = { method: 'GET', mode: 'no-cors', credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer', signal: link.signal };
      if (!isIPLiteral(new URL(endpoint).hostname)) init.targetAddressSpace = 'loopback';
      const res = await this._fetch(`${endpoint}/v1/status`, init);
      return res.type === 'opaque' || res.status > 0;
    } catch {
      return false;
    } finally {
      link.cleanup();
    }
  }

  /** GET /v1/status (fresh). */
  status({ signal, timeout } = {}) {
    return this._request('GET', '/v1/status', undefined, { signal, timeout, retry: true }).then((s) => {
      this.lastStatus = s;
      return s;
    });
  }

  /** GET /v1/readers → the array of readers. */
  async readers({ signal, timeout } = {}) {
    const r = await this._request('GET', '/v1/readers', undefined, { signal, timeout, retry: true });
    if (!Array.isArray(r.readers)) throw new CpsAgentError('protocol_error', 'readers: missing array');
    return r.readers;
  }

  /** GET /v1/card → the holder identity (no PIN needed). */
  readCard({ reader, signal, timeout } = {}) {
    const q = reader ? `?reader=${encodeURIComponent(reader)}` : '';
    return this._request('GET', `/v1/card${q}`, undefined, { signal, timeout, retry: true });
  }

  /**
   * POST /v1/authenticate: the card signs SHA-256(origin) ‖ SHA-256(nonce)
   * after the user typed the PIN in the agent's own window. Send the token
   * to your server unchanged; it rebuilds origin and nonce and verifies.
   * @param {string} challengeNonce the nonce issued by your server (44..128 base64 chars)
   */
  async authenticate(challengeNonce, { reader, lang, signal, timeout } = {}) {
    if (typeof challengeNonce !== 'string' || challengeNonce.length < 44 || challengeNonce.length > 128) {
      throw new CpsAgentError('bad_request', 'challengeNonce must be a string of 44 to 128 base64 characters', { field: 'challengeNonce' });
    }
    const body = { challengeNonce };
    if (reader) body.reader = reader;
    const l = lang ?? this._lang;
    if (l) body.lang = l;
    const token = await this._request('POST', '/v1/authenticate', JSON.stringify(body), {
      signal, timeout: timeout ?? this._interactiveTimeout,
    });
    if (typeof token.unverifiedCertificate !== 'string' || typeof token.signature !== 'string' || typeof token.format !== 'string') {
      throw new CpsAgentError('protocol_error', 'authenticate: answer is not a Web eID token');
    }
    return token;
  }

  /**
   * POST /v1/sign in any of the API's three modes:
   *  - {dataToSign}                                   → format "raw"
   *  - {document, format: 'cades'}                    → detached CAdES .p7s
   *  - {documentDigest, digestAlgorithm: 'SHA-256', format: 'cades'}
   * Binary values may be ArrayBuffer, typed arrays, Blob/File or base64.
   */
  async sign(request, { description, reader, lang, signal, timeout } = {}) {
    if (!request || typeof request !== 'object') throw new CpsAgentError('bad_request', 'sign: request object expected');
    const modes = ['dataToSign', 'document', 'documentDigest'].filter((k) => request[k] !== undefined && request[k] !== null);
    if (modes.length !== 1) {
      throw new CpsAgentError('bad_request', 'sign: give exactly one of dataToSign, document, documentDigest', { field: modes[1] ?? 'document' });
    }
    const mode = modes[0];
    const body = {};
    const { b64, length } = await toBase64(request[mode], mode);
    if (signal?.aborted) throw abortedError(signal);
    body[mode] = b64;
    if (mode === 'dataToSign') {
      if (request.format !== undefined && request.format !== 'raw') {
        throw new CpsAgentError('bad_request', 'sign: dataToSign produces format "raw"', { field: 'format' });
      }
      if (length > MAX_DATA_TO_SIGN) throw new CpsAgentError('payload_too_large', 'sign: dataToSign is limited to 64 KiB', { field: 'dataToSign' });
    } else {
      const format = request.format ?? 'cades';
      if (format !== 'cades') throw new CpsAgentError('bad_request', `sign: unsupported format ${format}`, { field: 'format' });
      body.format = format;
      if (mode === 'documentDigest') {
        const alg = request.digestAlgorithm ?? 'SHA-256';
        if (alg !== 'SHA-256') throw new CpsAgentError('bad_request', `sign: unsupported digestAlgorithm ${alg}`, { field: 'digestAlgorithm' });
        if (length !== 32) throw new CpsAgentError('bad_request', 'sign: a SHA-256 digest is 32 bytes', { field: 'documentDigest' });
        body.digestAlgorithm = alg;
      }
    }
    if (description !== undefined) {
      if (typeof description !== 'string' || description.length > 200) {
        throw new CpsAgentError('bad_request', 'sign: description must be a string of at most 200 characters', { field: 'description' });
      }
      body.description = description;
    }
    if (reader) body.reader = reader;
    const l = lang ?? this._lang;
    if (l) body.lang = l;
    const json = JSON.stringify(body);
    if (json.length > MAX_SIGN_BODY) {
      throw new CpsAgentError('payload_too_large', 'sign: the request exceeds 16 MiB; sign the document digest instead', { field: mode });
    }
    const res = await this._request('POST', '/v1/sign', json, { signal, timeout: timeout ?? this._interactiveTimeout });
    if (typeof res.signature !== 'string' || typeof res.certificate !== 'string') {
      throw new CpsAgentError('protocol_error', 'sign: answer lacks signature or certificate');
    }
    return res;
  }

  /**
   * Follows /v1/events over a WebSocket that reconnects by itself
   * (exponential backoff with jitter). See EventsOptions in cpsagent.d.ts.
   * @returns {EventSubscription}
   */
  events(options = {}) {
    return new EventSubscription(this, options);
  }

  _newWebSocket(url) {
    const WS = this._WebSocketImpl ?? globalThis.WebSocket;
    if (typeof WS !== 'function') throw new CpsAgentError('insecure_context', 'WebSocket is not available');
    return new WS(url);
  }

  /** Explains why a WebSocket to endpoint failed, through an HTTP request. */
  async _diagnose(endpoint) {
    try {
      const s = await this._request('GET', '/v1/status', undefined, { endpoint, timeout: this._probeTimeout });
      checkStatus(s, endpoint, this._requiredCapabilities);
      return new CpsAgentError('protocol_error', `${endpoint}: HTTP works but the event WebSocket was refused`, { endpoint });
    } catch (e) {
      return e instanceof CpsAgentError ? e : new CpsAgentError('agent_unreachable', String(e), { endpoint, cause: e });
    }
  }
}

function defaultStorage() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}

function defaultLang() {
  const l = globalThis.navigator?.language;
  if (typeof l !== 'string') return null;
  if (l.toLowerCase().startsWith('fr')) return 'fr';
  return 'en';
}

/** Throws version_mismatch / protocol_error when a status is unusable. */
function checkStatus(status, endpoint, required) {
  const v = parseVersion(status?.apiVersion);
  if (!v) {
    throw new CpsAgentError('protocol_error', `${endpoint}: /v1/status has no apiVersion`, { endpoint });
  }
  if (v[0] !== API_MAJOR) {
    const e = new CpsAgentError('version_mismatch', `agent API ${status.apiVersion}, this page needs ${API_VERSION}`, { endpoint });
    e.agentVersion = status.version ?? null;
    e.apiVersion = status.apiVersion;
    throw e;
  }
  const caps = Array.isArray(status.capabilities) ? status.capabilities : [];
  const missing = required.filter((c) => !caps.includes(c));
  if (missing.length > 0) {
    const e = new CpsAgentError('version_mismatch', `agent ${status.version ?? '?'} lacks capabilities: ${missing.join(', ')}`, { endpoint });
    e.agentVersion = status.version ?? null;
    e.apiVersion = status.apiVersion;
    e.missingCapabilities = missing;
    throw e;
  }
}

function problemError(json, status, endpoint) {
  const p = json && typeof json === 'object' ? json : {};
  const code = typeof p.code === 'string' && p.code !== '' ? p.code : null;
  if (!code) {
    return new CpsAgentError('protocol_error', `HTTP ${status} without a problem code`, { status, endpoint });
  }
  return new CpsAgentError(code, p.detail || p.title || code, {
    status,
    endpoint,
    detail: p.detail,
    detailFr: p.detailFr,
    title: p.title,
    field: p.field,
    triesLeft: Number.isInteger(p.triesLeft) ? p.triesLeft : null,
    problem: p,
  });
}

/**
 * Reads the Local Network Access permission: 'granted' | 'denied' |
 * 'prompt', or null when the browser has no such permission. Chrome 145+
 * names it 'loopback-network'; Chrome 142-144 'local-network-access'.
 */
export async function localNetworkPermission() {
  const perms = globalThis.navigator?.permissions;
  if (!perms || typeof perms.query !== 'function') return null;
  for (const name of ['loopback-network', 'local-network-access']) {
    try {
      const st = await perms.query({ name });
      if (st && typeof st.state === 'string') return st.state;
    } catch {
      // Unknown permission name in this browser: try the next one.
    }
  }
  return null;
}

const FATAL_EVENT_ERRORS = new Set(['insecure_context', 'version_mismatch']);

/** A live /v1/events subscription. Call close() to stop it. */
export class EventSubscription {
  constructor(agent, options) {
    this._agent = agent;
    this._o = options;
    this._reconnect = options.reconnect === false ? null : { ...(options.reconnect === true ? {} : options.reconnect ?? {}) };
    this._random = options.random ?? Math.random;
    this._attempt = 0;
    this._ws = null;
    this._timer = null;
    this._closedFlag = false;
    /** 'connecting' | 'open' | 'reconnecting' | 'closed' */
    this.state = 'connecting';
    /** Last status seen in a hello message. */
    this.status = null;
    /** Resolves once the subscription is closed for good. */
    this.closed = new Promise((resolve) => { this._resolveClosed = resolve; });
    this._onAbort = () => this.close();
    if (options.signal) {
      if (options.signal.aborted) { queueMicrotask(() => this.close()); return; }
      options.signal.addEventListener('abort', this._onAbort, { once: true });
    }
    queueMicrotask(() => this._connect());
  }

  _emit(name, ...args) {
    const fn = this._o[name];
    if (typeof fn !== 'function') return;
    try {
      fn(...args);
    } catch (e) {
      // A throwing listener must not kill the subscription: report it the
      // way browsers report errors of event handlers.
      if (typeof globalThis.reportError === 'function') globalThis.reportError(e);
      else queueMicrotask(() => { throw e; });
    }
  }

  _setState(state, info) {
    this.state = state;
    this._emit('onStateChange', state, info ?? {});
  }

  async _connect() {
    if (this._closedFlag) return;
    this._setState(this._attempt === 0 && this.status === null ? 'connecting' : 'reconnecting', { attempt: this._attempt });
    let endpoint;
    try {
      endpoint = (await this._agent._ready()).endpoint;
    } catch (e) {
      this._failed(e);
      return;
    }
    if (this._closedFlag) return;
    const url = endpoint.replace(/^http/, 'ws') + '/v1/events';
    let ws;
    try {
      ws = this._agent._newWebSocket(url);
    } catch (e) {
      this._failed(e instanceof CpsAgentError ? e : new CpsAgentError('agent_unreachable', String(e), { endpoint, cause: e }));
      return;
    }
    this._ws = ws;
    let hello = false;
    let settled = false;
    ws.onmessage = (m) => {
      if (this._ws !== ws) return;
      let msg;
      try {
        msg = JSON.parse(typeof m.data === 'string' ? m.data : '');
      } catch {
        msg = null;
      }
      if (!msg || typeof msg.type !== 'string') {
        this._emit('onError', new CpsAgentError('protocol_error', 'event is not a JSON object with a type', { endpoint }));
        return;
      }
      if (msg.type === 'hello') {
        const v = parseVersion(msg.apiVersion);
        if (!v || v[0] !== API_MAJOR) {
          settled = true;
          const e = new CpsAgentError('version_mismatch', `agent events API ${msg.apiVersion}, this page needs ${API_VERSION}`, { endpoint });
          e.apiVersion = msg.apiVersion ?? null;
          this._fatal(e);
          return;
        }
        hello = true;
        this._attempt = 0;
        if (msg.status && typeof msg.status === 'object') {
          this.status = msg.status;
          this._agent.lastStatus = msg.status;
        }
        this._setState('open', { endpoint });
        if (msg.status) this._emit('onStatus', msg.status);
      }
      this._emit('onEvent', msg);
    };
    ws.onerror = () => {};
    ws.onclose = async (ev) => {
      if (this._ws !== ws || settled) return;
      settled = true;
      this._ws = null;
      if (this._closedFlag) return;
      let err;
      if (!hello) {
        err = await this._agent._diagnose(endpoint);
      } else {
        err = new CpsAgentError('agent_unreachable', `event connection lost (code ${ev?.code ?? '?'})`, { endpoint });
      }
      this._agent.reset();
      this._failed(err);
    };
  }

  _failed(err) {
    if (this._closedFlag) return;
    if (FATAL_EVENT_ERRORS.has(err.code) || !this._reconnect) {
      this._fatal(err);
      return;
    }
    const max = this._reconnect.maxAttempts ?? Infinity;
    if (this._attempt >= max) {
      this._fatal(err);
      return;
    }
    const delay = backoffDelay(this._attempt, this._reconnect, this._random);
    this._attempt++;
    this._emit('onError', err);
    this._setState('reconnecting', { attempt: this._attempt, delay, error: err });
    this._timer = setTimeout(() => { this._timer = null; this._connect(); }, delay);
  }

  _fatal(err) {
    this._emit('onError', err);
    this.close(err);
  }

  /** Stops the subscription (no more reconnection). */
  close(reason) {
    if (this._closedFlag) return;
    this._closedFlag = true;
    if (this._timer !== null) clearTimeout(this._timer);
    this._timer = null;
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      try { ws.close(1000); } catch { /* already closing */ }
    }
    if (this._o.signal) this._o.signal.removeEventListener('abort', this._onAbort);
    this._setState('closed', reason ? { error: reason } : {});
    this._resolveClosed();
  }
}

export default CpsAgent;
