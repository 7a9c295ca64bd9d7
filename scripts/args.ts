// Command-line parsing shared by every `pinwave` subcommand: node:util parseArgs in strict
// mode, with its errors turned into a UsageError that names the flag (exit 2).
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A wrong, missing or malformed flag: the CLI prints the message and the usage, exit 2. */
export class UsageError extends Error {
  constructor(message: string, readonly usage?: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** What a command writes to and reads from: injected so tests run commands in-process. */
export interface Io {
  out(line: string): void;
  err(line: string): void;
  env: NodeJS.ProcessEnv;
  /** true when stdout is a terminal (live views redraw; otherwise they print one line per change) */
  tty: boolean;
}

export const processIo: Io = {
  out: (line) => void process.stdout.write(line + '\n'),
  err: (line) => void process.stderr.write(line + '\n'),
  env: process.env,
  tty: Boolean(process.stdout.isTTY),
};

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parse `args` against `options`; unknown flags, missing values, stray positionals and a one-value flag given two values are UsageErrors. */
export function parse<O extends Options>(args: string[], options: O, usage: string, positionals = false) {
  let parsed;
  try {
    parsed = parseArgs({ args: negativeValues(args, options), options, strict: true, allowPositionals: positionals, tokens: true });
  } catch (err) {
    const message = (err as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(message, usage);
  }
  // parseArgs keeps the last of two values; `--group prod ... --group staging` is a slip to name, not
  // an order to act on one of them.
  const first = new Map<string, string>();
  for (const token of parsed.tokens) {
    if (token.kind !== 'option' || token.value === undefined || options[token.name].multiple) continue;
    const earlier = first.get(token.name);
    if (earlier !== undefined && earlier !== token.value) {
      throw new UsageError(`--${token.name} given twice (${JSON.stringify(earlier)}, then ${JSON.stringify(token.value)}): give it once`, usage);
    }
    first.set(token.name, token.value);
  }
  return parsed;
}

/**
 * `--limit -1` as `--limit=-1`: parseArgs takes a value that starts with a dash for a flag and
 * refuses it ("argument is ambiguous"); a negative number is a value, which the flag's own check then
 * refuses naming the flag and what it takes. Nothing after `--` is touched.
 */
function negativeValues(args: string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') return out.concat(args.slice(i));
    const takesValue = a.startsWith('--') && !a.includes('=') && Object.hasOwn(options, a.slice(2)) && options[a.slice(2)].type === 'string';
    if (takesValue && /^-\d/.test(args[i + 1] ?? '')) out.push(`${a}=${args[++i]}`);
    else out.push(a);
  }
  return out;
}

/** The value of a required string flag, or a UsageError naming it. */
export function required(value: string | undefined, flag: string, usage: string): string {
  if (value === undefined || value === '') throw new UsageError(`missing required flag --${flag}`, usage);
  return value;
}

/** A non-negative safe integer flag, from range[0] to range[1] when given; a UsageError naming the flag, what it takes and what came otherwise. */
export function uintFlag(value: string, flag: string, usage: string, range?: readonly [number, number]): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || (range && (n < range[0] || n > range[1]))) {
    throw new UsageError(`--${flag} expects ${range ? `a whole number from ${range[0]} to ${range[1]}` : 'a non-negative integer'}, got "${value}"`, usage);
  }
  return n;
}

/** A duration such as 90s, 15m, 12h, 30d (or bare seconds), in seconds; a UsageError otherwise. */
export function durationFlag(value: string, flag: string, usage: string): number {
  const m = /^(\d+)(s|m|h|d)?$/.exec(value);
  if (!m) throw new UsageError(`--${flag} expects a duration like 90s, 15m, 12h or 30d, got "${value}"`, usage);
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
  const seconds = Number(m[1]) * unit;
  if (!Number.isSafeInteger(seconds)) throw new UsageError(`--${flag} is too large: "${value}"`, usage);
  return seconds;
}
