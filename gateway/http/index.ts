// The HTTP API's public surface: what `pinwave gateway` and tests use.
export { buildServer, type ServerOptions } from './server.ts';
export { ROLES, allows, bearerToken, findToken, FailureLimiter, type ApiToken, type Role, type AuthLimits } from './auth.ts';
export { errorBody, type ErrorBody } from './errors.ts';
export { deviceView, PROVISION_BODY_LIMIT } from './devices.ts';
export { packageVersion } from './info.ts';
