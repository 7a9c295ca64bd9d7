// Coded errors of the gateway's programmatic API (fastify-style: callers and tests match codes,
// not message text). The HTTP layer maps each code to its status.
import type { PrefixResolution } from './id-prefix.ts';

export const ERROR_STATUS = {
  PW_INVALID: 400, // a field is wrong: the message names it
  PW_INVALID_PLAN: 400,
  PW_NOT_FOUND: 404,
  PW_CONFLICT: 409, // an id that exists already, a device already in a pending, running or held rollout
  PW_AMBIGUOUS: 409, // an id prefix that more than one id starts with: details.candidates names them
  PW_INVALID_STATE: 409, // an action the current state forbids: the message names the state
  PW_PREFLIGHT: 422, // the bundle cannot be accepted by some targeted devices
  PW_NO_SIGNING_KEY: 409, // an upload-only gateway (no signing key) was asked to sign: upload a bundle signed elsewhere
  PW_UPLOAD_REFUSED: 422, // an uploaded bundle a device of its group would reject: details.reason is the verifier's
  PW_APPROVAL_REQUIRED: 409, // a rollout that waits for approval by operators other than its creator: details.approval says how many
  PW_SELF_APPROVAL: 403, // the creator of a rollout approving it: another operator must
  PW_BROKER_UNAVAILABLE: 503, // external broker mode: the store took a credential change the broker did not (docs/architecture.md §8)
  PW_LEADER_UNAVAILABLE: 503, // replicas: an action forwarded to the leading replica got no answer in time (docs/architecture.md §8)
} as const;

export type GatewayErrorCode = keyof typeof ERROR_STATUS;

export class GatewayError extends Error {
  readonly statusCode: number;
  constructor(
    readonly code: GatewayErrorCode,
    message: string,
    /** structured detail for the caller: offending ids, pre-flight problems, field errors */
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'GatewayError';
    this.statusCode = ERROR_STATUS[code];
  }
}

export const invalid = (message: string, details?: unknown) => new GatewayError('PW_INVALID', message, details);
export const notFound = (what: string, id: string) => new GatewayError('PW_NOT_FOUND', `no ${what} "${id}"`);

/** The coded error of an id or prefix that names no one id (gateway/id-prefix.ts): too short, unknown, or ambiguous naming the candidates. */
export function unresolved(r: Exclude<PrefixResolution, { ok: true }>): GatewayError {
  if (r.code === 'ambiguous') return new GatewayError('PW_AMBIGUOUS', r.message, { candidates: r.candidates });
  return new GatewayError(r.code === 'too_short' ? 'PW_INVALID' : 'PW_NOT_FOUND', r.message);
}
