// Types of the Latchkey browser SDK (GET /sdk/latchkey.js).

/** Latchkey's problem codes, and the browser-side ones the SDK adds. */
export type LatchkeyErrorCode =
  | 'invalid_request' | 'unauthorized' | 'forbidden' | 'not_found' | 'passkeys_disabled'
  | 'token_invalid' | 'token_expired' | 'token_used' | 'scope_required' | 'ceremony_invalid'
  | 'ceremony_expired' | 'origin_mismatch' | 'rp_id_mismatch' | 'challenge_mismatch'
  | 'user_verification_required' | 'credential_unknown' | 'credential_revoked'
  | 'credential_exists' | 'counter_regressed' | 'authenticator_not_allowed' | 'payload_too_large' | 'rate_limited' | 'internal'
  | 'cancelled' | 'not_supported' | 'network_error' | 'browser_error';

export class LatchkeyError extends Error {
  readonly name: 'LatchkeyError';
  /** Stable, for programs; `message` is for people. */
  readonly code: LatchkeyErrorCode;
  /** The HTTP status when Latchkey refused. */
  readonly status?: number;
  /** Latchkey's problem document when it refused (quote its `request_id` to the operator). */
  readonly problem?: {
    type: string; title: string; status: number; detail: string; code: string;
    field?: string; request_id?: string; signal_unknown_credential?: boolean;
  };
}

export interface LatchkeyOptions {
  /** Where Latchkey is served, e.g. `https://auth.example.com`. */
  baseUrl: string;
  /** Your tenant's id (needed to sign in). */
  tenantId?: string;
  /**
   * Pass Latchkey's signals on to the password manager after each ceremony (the WebAuthn
   * Signal API: all accepted credentials, current user details, unknown credential). Default
   * `true`; browsers without the Signal API skip them.
   */
  signals?: boolean;
}

export interface Authenticator {
  id: string;
  name: string;
  aaguid: string;
  provider_name?: string;
  backup_eligible: boolean;
  backup_state: boolean;
  transports: string[];
  created_at: string;
  last_used_at?: string;
  revoked_at?: string;
  /** What the attestation proved at registration. */
  attestation_trust: 'none' | 'self' | 'certified';
  /** A certified passkey's FIDO certification level, e.g. `FIDO_CERTIFIED_L1`. */
  certification_level?: string;
  /** Set when FIDO metadata reports the model revoked or compromised, e.g. `REVOKED`. */
  metadata_status?: string;
}

export interface SignUpResult {
  /** `lk_val_…`: send it to your backend, which validates it (single-use, 5 minutes). */
  token: string;
  authenticator: Authenticator;
}

export interface SignInResult {
  /** `lk_val_…`: send it to your backend, which validates it (single-use, 5 minutes). */
  token: string;
}

export interface SignUpOptions {
  /** `lk_enr_…` from your backend. */
  token: string;
  /** The passkey's name; by default the provider's ("Google Password Manager") or "Passkey". */
  name?: string;
  /**
   * Bind this browser's device key (a non-extractable P-256 key kept in IndexedDB, created now
   * if needed) to the user; later sign-ins from this browser are then reported `known`.
   * Needs `tenantId`.
   */
  bindDevice?: boolean;
}

export class Latchkey {
  constructor(options: LatchkeyOptions);
  readonly baseUrl: string;
  readonly tenantId?: string;
  static supported(): boolean;
  static autofillSupported(): Promise<boolean>;
  /** Whether this browser may create a passkey silently (`getClientCapabilities().conditionalCreate`). */
  static conditionalCreateSupported(): Promise<boolean>;
  static cancel(): void;
  readonly signals: boolean;
  /** Registers a passkey with an enrollment token (`lk_enr_…`) from your backend. */
  signUp(options: SignUpOptions & { conditional?: false }): Promise<SignUpResult>;
  /**
   * An automatic passkey upgrade: the browser creates the passkey without a prompt, where it
   * offers conditional create; `null` where it does not, or declines.
   */
  signUp(options: SignUpOptions & { conditional: true }): Promise<SignUpResult | null>;
  /** Signs in with a passkey: a known user, a picker, or the browser's autofill. */
  signIn(options?: {
    userId?: string;
    autofill?: boolean;
    /** Create this browser's device key first if it has none (see `SignUpOptions.bindDevice`). */
    bindDevice?: boolean;
  }): Promise<SignInResult>;
}

export default Latchkey;
