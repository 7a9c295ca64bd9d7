// `--log-format pretty`: pino's JSON lines turned into one readable line each, for a person at a
// terminal (`journalctl` keeps the JSON default, which tools parse). No dependency: a log line is
// flat JSON, and this needs nothing a small formatter cannot do.
//
//   2026-01-01T12:00:00.000Z WARN  gateway  rollout held  rollout=r-thermostats-2-1x wave=1 reason=failure_threshold
//
// Pino passes each entry to `write` whole; anything that is not a JSON object goes through as it came.

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** Fields every line has, shown in the line's head or not at all. */
const HEAD = new Set(['time', 'level', 'msg', 'hostname', 'name', 'component']);

const value = (v: unknown): string => {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
};

/** One entry as a line: time, level, component, message, then key=value for the rest. */
export function prettyLine(json: string): string {
  let e: Record<string, unknown>;
  try {
    e = JSON.parse(json);
  } catch {
    return json.replace(/\n$/, '');
  }
  if (typeof e !== 'object' || e === null || Array.isArray(e)) return json.replace(/\n$/, '');
  const time = typeof e.time === 'number' ? new Date(e.time).toISOString() : String(e.time ?? '');
  const level = (LEVELS[e.level as number] ?? String(e.level ?? '')).padEnd(5);
  const rest = Object.entries(e)
    .filter(([k]) => !HEAD.has(k))
    .map(([k, v]) => `${k}=${value(v)}`);
  const component = typeof e.component === 'string' ? e.component : '-';
  return `${time} ${level} ${component}  ${String(e.msg ?? '')}${rest.length > 0 ? `  ${rest.join(' ')}` : ''}`;
}

/** A pino destination writing pretty lines to `out` (default stderr). */
export function prettyDestination(out: { write(s: string): unknown } = process.stderr) {
  return {
    write(chunk: string) {
      for (const line of chunk.split('\n')) if (line !== '') out.write(prettyLine(line) + '\n');
      return true;
    },
  };
}
