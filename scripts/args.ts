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

/** Parse `args` against `options`; unknown flags, missing values and stray positionals are UsageErrors. */
export function parse<O extends Options>(args: string[], options: O, usage: string, positionals = false) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: positionals });
  } catch (err) {
    const message = (err as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(message, usage);
  }
}

/** The value of a required string flag, or a UsageError naming it. */
export function required(value: string | undefined, flag: string, usage: string): string {
  if (value === undefined || value === '') throw new UsageError(`missing required flag --${flag}`, usage);
  return value;
}

/** A non-negative safe integer flag, or a UsageError naming the flag and what came. */
export function uintFlag(value: string, flag: string, usage: string): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new UsageError(`--${flag} expects a non-negative integer, got "${value}"`, usage);
  }
  return Number(value);
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
