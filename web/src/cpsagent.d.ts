// Type declarations for cpsagent.js — client of the cpsagent local API v1.

/** Version of the local API this library speaks. */
export declare const API_VERSION: '1.0';
/** Default TCP port of the agent (47180), the first of its range. */
export declare const DEFAULT_PORT: number;
/** Ports the agent may listen on: 47180 to 47199 (one agent per user on a shared host). */
export declare const DEFAULT_PORTS: readonly number[];

/** Codes from the agent's problem documents (docs/api.md). */
export type ApiErrorCode =
  | 'bad_request'
  | 'host_not_allowed'
  | 'origin_not_allowed'
  | 'method_not_allowed'
  | 'unsupported_media_type'
  | 'payload_too_large'
  | 'not_found'
  | 'rate_limited'
  | 'agent_busy'
  | 'reader_absent'
  | 'reader_ambiguous'
  | 'card_absent'
  | 'card_removed'
  | 'card_changed'
  | 'card_reset'
  | 'card_unsupported'
  | 'operation_not_supported'
  | 'pcsc_unavailable'
  | 'pin_cancelled'
  | 'pin_incorrect'
  | 'pin_blocked'
  | 'pin_format'
  | 'pin_unavailable'
  | 'card_error'
  | 'agent_shutting_down'
  | 'internal';

/** Failures only the client sees. */
export type ClientErrorCode =
  | 'agent_unreachable'
  | 'certificate_untrusted'
  | 'local_network_access_denied'
  | 'version_mismatch'
  | 'insecure_context'
  | 'timeout'
  | 'aborted'
  | 'protocol_error';

export type ErrorCodeValue = ApiErrorCode | ClientErrorCode;

export declare const ErrorCode: Readonly<{
  BAD_REQUEST: 'bad_request';
  HOST_NOT_ALLOWED: 'host_not_allowed';
  ORIGIN_NOT_ALLOWED: 'origin_not_allowed';
  METHOD_NOT_ALLOWED: 'method_not_allowed';
  UNSUPPORTED_MEDIA_TYPE: 'unsupported_media_type';
  PAYLOAD_TOO_LARGE: 'payload_too_large';
  NOT_FOUND: 'not_found';
  RATE_LIMITED: 'rate_limited';
  AGENT_BUSY: 'agent_busy';
  READER_ABSENT: 'reader_absent';
  READER_AMBIGUOUS: 'reader_ambiguous';
  CARD_ABSENT: 'card_absent';
  CARD_REMOVED: 'card_removed';
  CARD_CHANGED: 'card_changed';
  CARD_RESET: 'card_reset';
  CARD_UNSUPPORTED: 'card_unsupported';
  OPERATION_NOT_SUPPORTED: 'operation_not_supported';
  PCSC_UNAVAILABLE: 'pcsc_unavailable';
  PIN_CANCELLED: 'pin_cancelled';
  PIN_INCORRECT: 'pin_incorrect';
  PIN_BLOCKED: 'pin_blocked';
  PIN_FORMAT: 'pin_format';
  PIN_UNAVAILABLE: 'pin_unavailable';
  CARD_ERROR: 'card_error';
  AGENT_SHUTTING_DOWN: 'agent_shutting_down';
  INTERNAL: 'internal';
  AGENT_UNREACHABLE: 'agent_unreachable';
  CERTIFICATE_UNTRUSTED: 'certificate_untrusted';
  LOCAL_NETWORK_ACCESS_DENIED: 'local_network_access_denied';
  VERSION_MISMATCH: 'version_mismatch';
  INSECURE_CONTEXT: 'insecure_context';
  TIMEOUT: 'timeout';
  ABORTED: 'aborted';
  PROTOCOL_ERROR: 'protocol_error';
}>;

export interface Remediation {
  /** Text for the user, in French. */
  fr: string;
  /** Text for the user, in English. */
  en: string;
}

/** Remediation templates ({url}: agent address, {n}: PIN tries left). */
export declare const REMEDIATION: Readonly<Record<ErrorCodeValue, Remediation>>;

/** The only error type thrown (or passed to onError) by this library. */
export declare class CpsAgentError extends Error {
  constructor(code: string, message?: string, extra?: Record<string, unknown>);
  readonly name: 'CpsAgentError';
  /** One of ErrorCode, or a code from a newer agent (then remediation repeats the agent's texts). */
  readonly code: ErrorCodeValue | (string & {});
  /** HTTP status of the agent's answer; 0 when there was no readable answer. */
  readonly status: number;
  /** Agent's English detail, when it answered with a problem document. */
  readonly detail: string | null;
  /** Agent's French detail. */
  readonly detailFr: string | null;
  readonly title: string | null;
  /** Request field at fault (bad_request, payload_too_large). */
  readonly field: string | null;
  /** PIN tries left (pin_incorrect). */
  readonly triesLeft: number | null;
  /** Agent base URL involved, e.g. "https://127.0.0.1:47180". */
  readonly endpoint: string | null;
  /** The whole problem document from the agent, if any. */
  readonly problem: Record<string, unknown> | null;
  /** True when the same call may succeed later without changing the page (after the user acted). */
  readonly retryable: boolean;
  /** Texts a portal can show as is. */
  readonly remediation: Remediation;
  /** version_mismatch: the agent's version and API version. */
  agentVersion?: string | null;
  apiVersion?: string | null;
  /** version_mismatch: required capabilities the agent lacks. */
  missingCapabilities?: string[];
  /** The remediation in 'fr' (default) or 'en'. */
  localizedMessage(lang?: 'fr' | 'en'): string;
}

/** Binary input: raw bytes, a File/Blob, or a standard (or URL-safe) base64 string. */
export type BinaryInput = ArrayBuffer | ArrayBufferView | Blob | string;

export interface BackoffOptions {
  /** First delay in ms (default 500). */
  initialDelay?: number;
  /** Ceiling in ms (default 30000). */
  maxDelay?: number;
  /** Growth factor (default 2). */
  factor?: number;
  /** Share of the delay taken off at random, 0..1 (default 0.5). */
  jitter?: number;
  /** Give up after this many failed attempts in a row (default Infinity). */
  maxAttempts?: number;
}

export interface CpsAgentOptions {
  /**
   * Agent base URLs tried in order (all at once), or a function returning
   * them; replaces the port scheme below. Default: https://127.0.0.1:PORT
   * then https://[::1]:PORT for each of `ports`, the remembered port first.
   */
  endpoints?: string[] | (() => string[] | Promise<string[]>);
  /**
   * Ports to try when `endpoints` is not given (default DEFAULT_PORTS,
   * 47180–47199). The remembered port and the first port are probed first;
   * the others when those failed, or after `fallbackDelay`.
   */
  ports?: number[];
  /** Timeout of non-interactive calls in ms (default 15000). */
  timeout?: number;
  /** Timeout of authenticate/sign, which wait for the PIN, in ms (default 300000). */
  interactiveTimeout?: number;
  /**
   * Timeout of each discovery probe in ms (default 70000): on a first visit
   * the agent answers only once the user answered its consent window (60 s
   * at most), and closes that window when the page gives up.
   */
  probeTimeout?: number;
  /**
   * How long discovery waits for a preferred address still pending before it
   * probes the rest of the range and takes a less preferred address that
   * answered, in ms (default 4000).
   */
  fallbackDelay?: number;
  /**
   * Remember the port that answered (localStorage key "cpsagent.port") and
   * try it first next time (default true).
   */
  rememberPort?: boolean;
  /** Storage for the remembered port (default localStorage; null: none). */
  storage?: { getItem(key: string): string | null; setItem(key: string, value: string): void } | null;
  /** Language of the agent's PIN window; default from navigator.language. */
  lang?: 'fr' | 'en';
  /** Capabilities the agent must list in /v1/status, else version_mismatch. */
  requiredCapabilities?: string[];
  /** fetch implementation (tests). */
  fetch?: typeof fetch;
  /** WebSocket constructor (tests). */
  WebSocket?: new (url: string) => WebSocket;
}

export interface Reader {
  name: string;
  cardPresent: boolean;
  atr?: string | null;
  card?: { generation?: string | null; supported?: boolean; serialNumber?: string | null } | null;
  [k: string]: unknown;
}

export interface AgentStatus {
  agent: string;
  version: string;
  apiVersion: string;
  capabilities: string[];
  pcsc: { available: boolean; [k: string]: unknown };
  readers: Reader[];
  cardPresent: boolean;
  [k: string]: unknown;
}

/** Holder identity (docs/identity-schema.md); fields as sent by the agent. */
export interface Identity {
  version: number;
  source: string;
  nationalId: string;
  nationalIdType: { code: string; label: string };
  rpps: string | null;
  adeli: string | null;
  structureId: string | null;
  internalId: string | null;
  familyName: string;
  givenName: string;
  profession: { code: string | null; label: string; system: string | null } | null;
  card: {
    type: string | null;
    typeCode: string | null;
    typeSource: string;
    serialNumber: string | null;
    generation: string | null;
    test: boolean;
  };
  certificates: Record<string, unknown>;
  [k: string]: unknown;
}

/** Web eID web-eid:1.0 authentication token, to send unchanged to the portal's server. */
export interface AuthToken {
  unverifiedCertificate: string;
  algorithm: 'RS256' | string;
  signature: string;
  format: 'web-eid:1.0' | string;
  appVersion: string;
  [k: string]: unknown;
}

export type SignRequest =
  | { dataToSign: BinaryInput; format?: 'raw' }
  | { document: BinaryInput; format?: 'cades' }
  | { documentDigest: BinaryInput; digestAlgorithm?: 'SHA-256'; format?: 'cades' };

export interface SignResult {
  /** base64: PKCS#1 v1.5 signature (raw) or DER .p7s (cades). */
  signature: string;
  format: 'raw' | 'cades' | string;
  signatureAlgorithm: { cryptoAlgorithm: string; hashFunction: string; paddingScheme: string };
  /** Signing certificate, DER base64. */
  certificate: string;
  [k: string]: unknown;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Overrides the default timeout (ms). */
  timeout?: number;
}

export interface CardCallOptions extends CallOptions {
  /** Reader name, when several readers hold cards. */
  reader?: string;
  /** Language of the PIN window. */
  lang?: 'fr' | 'en';
}

export interface SignOptions extends CardCallOptions {
  /** Plain text (≤ 200 chars) shown in the PIN window. */
  description?: string;
}

export type AgentEventType =
  | 'hello'
  | 'reader-added'
  | 'reader-removed'
  | 'card-inserted'
  | 'card-removed'
  | 'identity-available'
  | 'pcsc-unavailable'
  | 'pcsc-available';

export interface AgentEvent {
  type: AgentEventType | (string & {});
  reader?: string;
  serialNumber?: string | null;
  generation?: string | null;
  time?: string;
  /** hello only */
  apiVersion?: string;
  /** hello only */
  status?: AgentStatus;
  [k: string]: unknown;
}

export type SubscriptionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface StateInfo {
  attempt?: number;
  /** ms before the next attempt (reconnecting). */
  delay?: number;
  endpoint?: string;
  error?: CpsAgentError;
}

export interface EventsOptions {
  /** Every message, the hello included (sent again after each reconnection). */
  onEvent?(event: AgentEvent): void;
  /** The status carried by each hello: resynchronise the page from it. */
  onStatus?(status: AgentStatus): void;
  onStateChange?(state: SubscriptionState, info: StateInfo): void;
  /** Each failure; reconnection goes on unless the error is insecure_context or version_mismatch. */
  onError?(error: CpsAgentError): void;
  /** false: no reconnection. Default: exponential backoff with jitter. */
  reconnect?: boolean | BackoffOptions;
  /** Aborting closes the subscription. */
  signal?: AbortSignal;
  /** Random source for the jitter (tests). */
  random?: () => number;
}

export declare class EventSubscription {
  readonly state: SubscriptionState;
  /** Status from the last hello, or null. */
  readonly status: AgentStatus | null;
  /** Resolves once closed for good. */
  readonly closed: Promise<void>;
  /** Stops the subscription (no further reconnection). */
  close(): void;
}

export declare class CpsAgent {
  constructor(options?: CpsAgentOptions);
  /** Base URL of the agent found, or null before discovery. */
  readonly endpoint: string | null;
  /** Last status seen. */
  readonly lastStatus: AgentStatus | null;
  /** Candidate base URLs tried by discovery, in order. */
  candidates(): Promise<string[]>;
  /** Finds the agent (cached), checks API version and capabilities. */
  connect(options?: { signal?: AbortSignal }): Promise<AgentStatus>;
  /** Forgets the agent found; the next call runs discovery again. */
  reset(): void;
  status(options?: CallOptions): Promise<AgentStatus>;
  readers(options?: CallOptions): Promise<Reader[]>;
  /** Holder identity, read without PIN. */
  readCard(options?: CallOptions & { reader?: string }): Promise<Identity>;
  /** Web eID token over SHA-256(origin) ‖ SHA-256(nonce); the user types the PIN in the agent's window. */
  authenticate(challengeNonce: string, options?: CardCallOptions): Promise<AuthToken>;
  sign(request: SignRequest, options?: SignOptions): Promise<SignResult>;
  events(options?: EventsOptions): EventSubscription;
}

/** Standard base64 with padding. */
export declare function bytesToBase64(bytes: Uint8Array): string;
/** Standard or URL-safe base64 → bytes; throws CpsAgentError('bad_request'). */
export declare function base64ToBytes(b64: string): Uint8Array;
/** SHA-256 (WebCrypto) of the input, as base64: the documentDigest of a document. */
export declare function sha256Base64(data: BinaryInput): Promise<string>;
/** Delay before reconnection attempt `attempt` (0-based). */
export declare function backoffDelay(attempt: number, cfg?: BackoffOptions, random?: () => number): number;
/** Local Network Access permission state, or null when the browser has none. */
export declare function localNetworkPermission(): Promise<'granted' | 'denied' | 'prompt' | null>;

export default CpsAgent;
