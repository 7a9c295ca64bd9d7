// What `npm pack` ships, and that an installed tarball runs: the `pinwave` command from a global
// install into a temporary prefix (docs/operations.md, install).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = new URL('../..', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
// The build already ran (npm ci's prepare); packing must not rebuild over it while other tests run.
const npm = (args: string[], cwd = ROOT) => execFileSync('npm', args, { cwd, encoding: 'utf8', env: { ...process.env, npm_config_update_notifier: 'false' }, timeout: 240_000 });

t.test('the tarball holds what runs (dist/), the docs and examples, and nothing of tests, sources or secrets', async (t) => {
  const [packed] = JSON.parse(npm(['pack', '--dry-run', '--json', '--ignore-scripts'])) as Array<{ files: Array<{ path: string }> }>;
  const files = packed.files.map((f) => f.path);
  for (const f of ['package.json', 'README.md', 'dist/scripts/pinwave.js', 'dist/scripts/cli.js', 'dist/gateway/gateway.js', 'dist/gateway/webhooks.js', 'dist/firmware-manifest/codec.js', 'docs/operations.md', 'docs/configuration.md', 'docs/runbook.md', 'docs/examples/pinwave.service', 'docs/examples/pinwave.yaml']) {
    t.ok(files.includes(f), `${f} is in the package`);
  }
  t.same(files.filter((f) => f.startsWith('test/') || f.startsWith('.ci/') || f.startsWith('coverage/') || f.startsWith('.tap/')), [], 'no tests, CI or coverage');
  t.same(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')), [], 'no TypeScript sources: dist/ is what runs');
  t.same(files.filter((f) => /(^|\/)(signing\.key|tokens\.json)$|\.key$|\.tgz$/.test(f)), [], 'no keys, token files or tarballs');
});

t.test('an installed tarball gives a working `pinwave` command', async (t) => {
  const dir = t.testdir();
  npm(['pack', '--ignore-scripts', '--silent', '--pack-destination', dir]);
  const tarball = join(dir, `${pkg.name}-${pkg.version}.tgz`);
  const prefix = join(dir, 'prefix');
  // Dependencies come from npm's cache where `npm ci` left them; the registry only for what is missing.
  npm(['install', '--global', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel', 'error', tarball], dir);
  const bin = join(prefix, 'bin', 'pinwave');
  const help = execFileSync(bin, ['--help'], { encoding: 'utf8' });
  t.match(help, /^pinwave — over-the-air certificate-pin updates for IoT fleets/);
  t.equal(execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim(), pkg.version);
  t.match(execFileSync(bin, ['keygen', '--out', join(dir, 'keys')], { encoding: 'utf8' }), /kid/, 'a command that loads the codec and keys runs');
});
