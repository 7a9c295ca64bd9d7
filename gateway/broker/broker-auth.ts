// The gateway's own broker credentials (docs/architecture.md §8): a JSON file, `{ "username", "password" }`,
// written by `pinwave broker mosquitto-config` and read by `pinwave gateway --broker-auth FILE`.
// Refused when group or others may read it: whoever reads it can provision, rotate and revoke
// every device in the broker.
//
//   writeFileSync(path, formatBrokerAuth({ username: 'pinwave@gateway', password }), { mode: 0o600 });
//   const auth = readBrokerAuth(path);   // { username, password }, or a BrokerAuthError naming what is wrong
import { readFileSync, statSync } from 'node:fs';

export const BROKER_AUTH_FILE = 'gateway-broker.json';

export interface BrokerAuth {
  username: string;
  password: string;
}

export class BrokerAuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BrokerAuthError';
  }
}

/** The file's text. */
export function formatBrokerAuth(auth: BrokerAuth): string {
  return JSON.stringify({ username: auth.username, password: auth.password }, null, 2) + '\n';
}

/** Reads and checks the file: mode 0600 (or stricter), JSON, a non-empty username and password and nothing else. */
export function readBrokerAuth(path: string): BrokerAuth {
  let mode: number;
  let text: string;
  try {
    mode = statSync(path).mode & 0o777;
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new BrokerAuthError(`cannot read the broker credentials ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (mode & 0o077) {
    throw new BrokerAuthError(`the broker credentials ${path} are readable by group or others (mode ${mode.toString(8).padStart(4, '0')}); run: chmod 600 ${path}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new BrokerAuthError(`${path} is not JSON: ${(err as Error).message}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new BrokerAuthError(`${path}: expected an object { "username", "password" }`);
  const o = data as Record<string, unknown>;
  const extra = Object.keys(o).filter((k) => k !== 'username' && k !== 'password');
  if (extra.length > 0) throw new BrokerAuthError(`${path}: unknown key${extra.length > 1 ? 's' : ''} ${extra.map((k) => JSON.stringify(k)).join(', ')} (expected only "username" and "password")`);
  for (const k of ['username', 'password'] as const) {
    if (typeof o[k] !== 'string' || o[k] === '') throw new BrokerAuthError(`${path}: "${k}" must be a non-empty string`);
  }
  return { username: o.username as string, password: o.password as string };
}
