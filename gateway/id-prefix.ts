// Ids as operators type them: a bundle id (64 hex digits, docs/architecture.md §3) or a rollout id
// (`r-<group>-<seq>-<suffix>`) may be given as a unique prefix of at least MIN_PREFIX characters,
// as the README and the CLI abbreviate them. Pure: the caller gathers the candidates.
//
//   resolveIdPrefix('8531aab5', ['8531aab5…', 'f00…'], 'bundle')  // → { ok: true, id: '8531aab5…' }
//
// An exact id always wins, whatever its length and whatever else it prefixes ("r-g-1-ab" against
// "r-g-1-abc"). Otherwise a prefix under MIN_PREFIX characters is refused before it is looked up, so
// a short one never resolves by luck on a small fleet and then breaks a script on a bigger one.

/** The shortest prefix accepted in place of a whole id. */
export const MIN_PREFIX = 8;
/** How many candidates an ambiguity names. */
export const MAX_CANDIDATES = 10;

export type IdKind = 'bundle' | 'rollout';

export type PrefixResolution =
  | { ok: true; id: string }
  | { ok: false; code: 'too_short'; message: string }
  | { ok: false; code: 'not_found'; message: string }
  | { ok: false; code: 'ambiguous'; message: string; candidates: string[] };

/**
 * `candidates`: every stored id that starts with `input` (ids that do not are ignored), or at
 * least MAX_CANDIDATES + 1 of them; `more`: whether the caller left further matches out.
 */
export function resolveIdPrefix(input: string, candidates: readonly string[], kind: IdKind, more = false): PrefixResolution {
  const matches = candidates.filter((c) => c.startsWith(input));
  if (matches.includes(input)) return { ok: true, id: input };
  if (input.length < MIN_PREFIX) {
    return { ok: false, code: 'too_short', message: `${kind} id "${input}" is neither a ${kind} id nor a prefix of at least ${MIN_PREFIX} characters` };
  }
  if (matches.length === 0) return { ok: false, code: 'not_found', message: `no ${kind} "${input}"` };
  if (matches.length === 1 && !more) return { ok: true, id: matches[0] };
  const shown = [...matches].sort().slice(0, MAX_CANDIDATES);
  const rest = matches.length - shown.length;
  const tail = rest > 0 || more ? `, and ${more ? 'more' : `${rest} more`}` : '';
  return {
    ok: false,
    code: 'ambiguous',
    message: `${kind} id prefix "${input}" is ambiguous: it starts ${shown.join(', ')}${tail}; give more characters`,
    candidates: shown,
  };
}
