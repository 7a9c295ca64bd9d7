// Error responses of the HTTP API: `{ statusCode, error, message }` as fastify writes
// them, plus `code` (stable, for callers and tests to match) and `details` where there is more to
// say (offending ids, field errors, the pre-flight result). One place maps every failure:
// - GatewayError: its code's status (gateway/errors.ts ERROR_STATUS), message and details;
// - a schema violation: 400 PW_INVALID, the message naming each field and the reason;
// - fastify's own client errors (malformed JSON 400, body over the limit 413, media type 415): kept;
// - anything else: 500 with a generic message; the error goes to the log, not to the client.
import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.ts';
import { StoreError } from '../store/types.ts';
import { StoreRefusal } from '../fleet-reads.ts';

export interface ErrorBody {
  statusCode: number;
  error: string;
  message: string;
  code: string;
  details?: unknown;
}

/** Codes the HTTP layer adds to the gateway's PW_ codes. */
export type HttpErrorCode = 'PW_UNAUTHORIZED' | 'PW_FORBIDDEN' | 'PW_TOO_MANY_REQUESTS' | 'PW_NOT_FOUND' | 'PW_METHOD_NOT_ALLOWED' | 'PW_INVALID' | 'PW_INTERNAL';

export function errorBody(statusCode: number, code: string, message: string, details?: unknown): ErrorBody {
  return { statusCode, error: STATUS_CODES[statusCode] ?? 'Error', message, code, ...(details !== undefined && { details }) };
}

export function sendError(reply: FastifyReply, body: ErrorBody): FastifyReply {
  return reply.code(body.statusCode).type('application/json; charset=utf-8').send(body);
}

/** Ajv's error object, as much of it as the formatter reads. */
interface SchemaError {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** Messages shown in `message`; `details.errors` holds up to MAX_DETAILS. */
const MAX_SHOWN = 10;
const MAX_DETAILS = 100;

/** One line per violation, naming the field: `body/devices/0/id must match pattern "..."`. */
export function describeSchemaError(e: SchemaError, dataVar: string): string {
  const at = dataVar + (e.instancePath ?? '');
  const p = e.params ?? {};
  switch (e.keyword) {
    case 'additionalProperties':
      return `${at} must NOT have unknown field "${String(p.additionalProperty)}"`;
    case 'required':
      return `${at} must have required field "${String(p.missingProperty)}"`;
    case 'enum':
      return `${at} must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    default:
      return `${at} ${e.message ?? `fails ${e.keyword}`}`;
  }
}

/** fastify's schemaErrorFormatter: one readable message for all violations (the first few), the list in details. */
export function schemaErrorFormatter(errors: SchemaError[], dataVar: string): Error {
  // anyOf/oneOf add a summary line after their branches' errors; the branches already say it.
  const lines = [...new Set(errors.filter((e) => e.keyword !== 'anyOf' || errors.length === 1).map((e) => describeSchemaError(e, dataVar)))];
  const shown = lines.slice(0, MAX_SHOWN).join(', ') + (lines.length > MAX_SHOWN ? `, and ${lines.length - MAX_SHOWN} more` : '');
  return Object.assign(new Error(shown), { details: { errors: lines.slice(0, MAX_DETAILS) } });
}

type Logger = Pick<FastifyRequest['log'], 'error' | 'warn'>;

export function toErrorBody(err: FastifyError & { details?: unknown }, log: Logger): ErrorBody {
  if (err instanceof GatewayError) return errorBody(err.statusCode, err.code, err.message, err.details);
  if (err.validation) return errorBody(400, 'PW_INVALID', err.message, err.details);
  // docs/storage.md: a change the store could not commit changed nothing; say which store and why.
  if (err instanceof StoreError) {
    log.error({ code: err.code, err: err.message }, 'store write failed');
    if (err.code === 'PW_STORE_FULL') return errorBody(507, err.code, `insufficient storage: ${err.message}; nothing was changed`);
    return errorBody(503, err.code, `the store cannot write: ${err.message}; nothing was changed`);
  }
  if (err instanceof StoreRefusal) return errorBody(409, 'PW_CONFLICT', err.message, { ids: err.ids });
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) return errorBody(status, err.code ?? 'PW_INVALID', err.message);
  log.error({ err }, 'request failed');
  return errorBody(500, 'PW_INTERNAL', 'Internal Server Error');
}

export function registerErrors(app: FastifyInstance): void {
  app.setSchemaErrorFormatter(schemaErrorFormatter);
  app.setErrorHandler((err: FastifyError, request, reply) => sendError(reply, toErrorBody(err, request.log)));
  app.setNotFoundHandler((request, reply) => sendError(reply, errorBody(404, 'PW_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0].slice(0, 200)}`)));
  // An empty segment where a route has a parameter (`/v1/devices/`, `/v1/rollouts//events`) names
  // nothing: a 404 like any path the API does not serve, before the access check (as that one is),
  // not a 400 about an empty id nor a 405 for the method. Registered before auth's own onRequest.
  app.addHook('onRequest', async (request, reply) => {
    const params = request.params as Record<string, string> | undefined;
    for (const k in params) if (k !== '*' && params[k] === '') return reply.callNotFound();
  });
}
