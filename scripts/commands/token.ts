// `pinwave token hash|new`: API tokens for the gateway's config. The config holds only
// hashes; `hash` reads the token from stdin when it is not an argument, so it stays out of shell
// history and process listings.
import { hashToken, newToken } from '../../gateway/credentials.ts';
import { API_TOKEN_RE } from '../../gateway/config.ts';
import { ROLES, type Role } from '../../gateway/http/auth.ts';
import { parse, UsageError, type Io } from '../args.ts';

const USAGE = `Usage:
  pinwave token hash [TOKEN]
  pinwave token new [--name NAME] [--role viewer|operator|admin] [--json]

hash   print the hash of an API token, for the config's tokens: [{ name, role, hash }].
       Without TOKEN it reads one line from stdin (keeps the token out of shell history):
         pinwave token hash < token.txt
new    make a random token (256 bits) and print it with its hash; the role defaults to operator.
       Give the token to its holder once; put only the hash in the config.`;

/** The most stdin is read for one token. */
const MAX_INPUT = 64 * 1024;

type Input = AsyncIterable<Buffer | string> & { isTTY?: boolean };

export async function main(args: string[], io: Io, stdin: Input = process.stdin): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'hash': return hash(rest, io, stdin);
    case 'new': return create(rest, io);
    case '--help': case '-h': case undefined:
      io.out(USAGE);
      return sub === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown subcommand "${sub}"`, USAGE);
  }
}

async function hash(args: string[], io: Io, stdin: Input): Promise<number> {
  const { values, positionals } = parse(args, { help: { type: 'boolean', short: 'h' } }, USAGE, true);
  if (values.help) return io.out(USAGE), 0;
  if (positionals.length > 1) throw new UsageError('hash takes at most one TOKEN', USAGE);
  if (positionals.length === 0 && stdin.isTTY) io.err('token (one line):');
  const token = positionals.length === 1 ? positionals[0] : await firstLine(stdin);
  // Never echo the token in an error: it may be a real one with a typo.
  if (token === '') throw new UsageError('no token given: pass TOKEN or write it to stdin', USAGE);
  if (!API_TOKEN_RE.test(token)) throw new UsageError(`a token must be 16 to 512 characters of A-Z a-z 0-9 - . _ ~ + / (got ${token.length} characters${/\s/.test(token) ? ', with whitespace' : ''})`, USAGE);
  io.out(hashToken(token));
  return 0;
}

async function create(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { name: { type: 'string' }, role: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, USAGE);
  if (values.help) return io.out(USAGE), 0;
  const role = (values.role ?? 'operator') as Role;
  if (!ROLES.includes(role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}, got "${values.role}"`, USAGE);
  const name = values.name ?? role;
  if (!/^[A-Za-z0-9._@-]{1,64}$/.test(name)) throw new UsageError(`--name must be 1 to 64 characters of A-Z a-z 0-9 . _ @ -, got "${name}"`, USAGE);
  const token = newToken();
  const h = hashToken(token);
  if (values.json) {
    io.out(JSON.stringify({ name, role, token, hash: h }));
    return 0;
  }
  io.out(`token: ${token}`);
  io.out(`hash: ${h}`);
  io.err(`add to the gateway config's tokens:  - { name: ${name}, role: ${role}, hash: "${h}" }`);
  return 0;
}

/** The first line of the input, without its line ending or surrounding blanks; reads no further. */
async function firstLine(input: Input): Promise<string> {
  let text = '';
  for await (const chunk of input) {
    text += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    if (text.includes('\n') || text.length > MAX_INPUT) break;
  }
  return text.slice(0, MAX_INPUT).split(/\r?\n/)[0].trim();
}
