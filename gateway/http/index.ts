// The HTTP API's public surface: what `pinwave gateway` and tests use.
export { buildServer, type ConsoleOptions, type ServerOptions } from './server.ts';
export { ROLES, allows, bearerToken, findToken, RouteAccessError, type ApiToken, type Role, type RouteAccess } from './auth.ts';
export { FailureLimiter, type AuthLimits } from './throttle.ts';
export { ApiTokens, type TokenChange } from './tokens.ts';
export { Sessions, CSRF_HEADER, type SessionOptions } from './sessions.ts';
export { MemorySessionStore, type SessionRecord, type SessionStore } from './session-store.ts';
export { ClockEventIds, type EventIdSource } from './rollout-feed.ts';
export { redactQuery } from './request-log.ts';
export type { Connections } from './connections.ts';
export { errorBody, type ErrorBody } from './errors.ts';
export { deviceView, PROVISION_BODY_LIMIT } from './devices.ts';
export { packageVersion } from './info.ts';
