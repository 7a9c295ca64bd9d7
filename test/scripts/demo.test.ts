// `npm run demo` does what the README says: a healthy 4-wave rollout to 1,000 devices completes,
// a rollout of pins that leave out a served key is held in its first wave by real pin-failure
// telemetry, and a rollback brings the devices back.
import t from 'tap';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const loader = fileURLToPath(new URL('../../node_modules/@tapjs/typescript/dist/esm/import.mjs', import.meta.url));
const demo = fileURLToPath(new URL('../../scripts/demo.ts', import.meta.url));

t.test('the demo runs the whole story and exits 0', async (t) => {
  const started = Date.now();
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, ['--import', loader, demo], { timeout: 90_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
  t.comment(`demo took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  t.equal(code, 0, stderr);
  t.match(stdout, /connected: 1000/);
  t.match(stdout, /completed: 1000 devices on seq 1, pin failures: 0/);
  t.match(stdout, /held in wave 1 \(10 devices\): failure_threshold/);
  t.match(stdout, /pin failures: telemetry\.thermo\.example:443 served sha256\//);
  t.match(stdout, /stuck devices \(\d+\): th-\d+ failing/);
  t.match(stdout, /the other 990 devices never received it/);
  t.match(stdout, /rollback completed: seq 3 on 10 devices; devices failing pin checks now: 0/);
});
