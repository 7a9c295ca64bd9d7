// What the project's sources cite must be in the repository: a comment or a document that cites
// docs/<file>.md names a file that exists, `docs/architecture.md §N` names a section it has, and
// nothing cites a design document outside the repository or an issue number (a newcomer has
// neither).
import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const SKIP = new Set(['node_modules', 'dist', 'coverage', '.tap', '.git', '.data']);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (SKIP.has(e.name)) return [];
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return /\.(ts|md|py)$/.test(e.name) ? [path] : [];
  });
}

/** The text a reader takes for commentary: comments of .ts and .py files, all of a .md file. */
function commentary(path: string): string {
  const text = readFileSync(path, 'utf8');
  if (path.endsWith('.md')) return text;
  const hash = path.endsWith('.py');
  const lines: string[] = [];
  let inBlock = false;
  let inDocstring = false;
  for (const line of text.split('\n')) {
    if (hash) {
      const quotes = (line.match(/"""/g) ?? []).length;
      if (inDocstring || quotes > 0) lines.push(line);
      if (quotes % 2 === 1) inDocstring = !inDocstring;
      const at = line.indexOf('#');
      if (!inDocstring && at >= 0) lines.push(line.slice(at));
      continue;
    }
    if (inBlock || line.includes('/*')) lines.push(line);
    if (line.includes('/*')) inBlock = !line.includes('*/', line.indexOf('/*'));
    else if (inBlock && line.includes('*/')) inBlock = false;
    const at = line.indexOf('//');
    if (at >= 0) lines.push(line.slice(at));
  }
  return lines.join('\n');
}

const files = sources(root);
const self = fileURLToPath(import.meta.url);
// Built from parts so that this file does not cite what it forbids.
const DESIGN = new RegExp(['DESIGN', 'md'].join('\\.'));
const ISSUE = new RegExp(['\\bissues?', '(\\s*#\\s*|\\s+|\\s*:\\s*)', '[0-9]'].join(''), 'i');
const ISSUE_LABEL = new RegExp(['\\(', 'issues?', ':'].join(''), 'i');

t.test('the tree holds the sources this test reads', async (t) => {
  t.ok(files.some((f) => f.endsWith('gateway/gateway.ts')) && files.some((f) => f.endsWith('docs/architecture.md')), `${files.length} files`);
});

t.test('no source cites a design document outside the repository, or an issue', async (t) => {
  const found: string[] = [];
  for (const f of files) {
    if (f === self) continue;
    commentary(f)
      .split('\n')
      .forEach((line) => {
        if (DESIGN.test(line) || ISSUE.test(line) || ISSUE_LABEL.test(line)) found.push(`${relative(root, f)}: ${line.trim()}`);
      });
  }
  t.same(found, [], 'cite docs/architecture.md (or another file in docs/, or an RFC clause) instead');
});

t.test('every docs/*.md a source cites exists', async (t) => {
  const missing: string[] = [];
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/\bdocs\/([A-Za-z0-9_-]+\.md)/g)) {
      if (!existsSync(join(root, 'docs', m[1]))) missing.push(`${relative(root, f)}: docs/${m[1]}`);
    }
    // Relative links between documents: [text](file.md) or (file.md#anchor).
    if (f.endsWith('.md')) {
      for (const m of text.matchAll(/\]\(([A-Za-z0-9_./-]+\.md)(#[^)]*)?\)/g)) {
        if (!existsSync(join(f, '..', m[1]))) missing.push(`${relative(root, f)}: ${m[1]}`);
      }
    }
  }
  t.same(missing, []);
});

t.test('every section of docs/architecture.md that a source cites exists', async (t) => {
  const doc = readFileSync(join(root, 'docs', 'architecture.md'), 'utf8');
  const sections = new Set([...doc.matchAll(/^## §(\d+) /gm)].map((m) => Number(m[1])));
  for (const n of [1, 2, 3, 4, 5, 6, 7]) t.ok(sections.has(n), `§${n} is there`);
  const missing: string[] = [];
  let cited = 0;
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    // "architecture.md §5", "§5, §7", "§5–§7", "§2; §6 pre-flight": every § of the citation.
    for (const m of text.matchAll(/architecture\.md((?:[\s,;–-]*§\d+(?:[–-]§?\d+)?)+)/g)) {
      for (const r of m[1].matchAll(/§(\d+)(?:[–-]§?(\d+))?/g)) {
        const from = Number(r[1]);
        const to = r[2] ? Number(r[2]) : from;
        for (let n = from; n <= to; n++) {
          cited++;
          if (!sections.has(n)) missing.push(`${relative(root, f)}: §${n}`);
        }
      }
    }
  }
  t.ok(cited > 50, `${cited} citations checked`);
  t.same(missing, [], 'each cited section is a heading "## §N …" of docs/architecture.md');
});
