// Tables for the CLI's human views: columns padded to their widest cell, two spaces apart, the
// header first. Cells are what the caller made them (a dash for nothing); pure: rows in, lines out.
//
//   table(['id', 'seq'], [['th-1', '3'], ['th-22', '-']])  // ['id     seq', 'th-1   3', 'th-22  -']

export function table(header: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string[] {
  const cells = [header, ...rows].map((r) => r.map(String));
  const widths = header.map((_, i) => Math.max(...cells.map((r) => [...(r[i] ?? '')].length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i] - [...c].length))).join('  ').trimEnd());
}

/** A time as people read it: ISO 8601 (the API sends epoch ms), or `never`. */
export function when(t: string | number | null | undefined, never = 'never'): string {
  if (t === null || t === undefined) return never;
  return typeof t === 'number' ? new Date(t).toISOString() : t;
}
