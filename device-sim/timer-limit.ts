// The longest a Node timer can wait: 2^31 - 1 ms (about 24.8 days). A longer delay does not wait
// longer: Node sets it to 1 ms and the timer fires at once (Node's timers documentation,
// setTimeout). The fleet's scheduler re-arms past it; a duration read from a scenario file or the
// behaviours of a model is refused above it where it comes in, naming the field, the value and
// the bound, so a delay meant as weeks is never none.
export const TIMER_MAX_MS = 2 ** 31 - 1;

/** Why `value` (in `unit`) is longer than a timer can wait, or null when it is not. */
export function overTimerLimit(value: number, unit: 'ms' | 's'): string | null {
  if ((unit === 's' ? value * 1000 : value) <= TIMER_MAX_MS) return null;
  const bound = unit === 's' ? Math.floor(TIMER_MAX_MS / 1000) : TIMER_MAX_MS;
  return `must be at most ${bound} ${unit === 's' ? 's' : 'ms'} (2^31 - 1 ms, the longest a timer can wait: about 24.8 days), got ${value}`;
}
