// `npm run demo` does what the README says: a healthy 4-wave rollout to 1,000 health-checked devices
// completes on their verified acks; the lockout forecast names exactly the devices lacking the next
// key; pre-flight refuses a pin set that leaves out the served key, naming the endpoint; forced, it
// is reverted by the devices themselves, held on their reverted acks, and no device is locked out by
// its own call-home handshakes.
import t from 'tap';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const loader = fileURLToPath(new URL('../../node_modules/@tapjs/typescript/dist/esm/import.mjs', import.meta.url));
const demo = fileURLToPath(new URL('../../scripts/demo.ts', import.meta.url));
// Every one of 1,000 devices runs real TLS handshakes before it commits new pins: under a full test
// run on a loaded machine the demo can take well over a minute.
t.setTimeout(240_000);

t.test('the demo runs the whole story and exits 0', async (t) => {
  const started = Date.now();
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, ['--import', loader, demo], { timeout: 200_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
  t.comment(`demo took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  t.equal(code, 0, stderr);
  t.match(stdout, /connected: 1000/);
  t.match(stdout, /completed: 1000 devices on seq 1, .*pin failures: 0/);
  t.match(stdout, /forecast: 5 devices would lock out if it served sha256\/\S+ now: th-1000, th-1001, th-1002, th-1003, th-1004/);
  t.match(stdout, /devices whose own trust state lacks that key: 5; the same devices: yes/);
  t.match(stdout, /forecast now: 0 would lock out/);
  t.match(stdout, /switches to its new key \(sha256\/\S+\): devices call home, failing: 0/);
  t.match(stdout, /pre-flight refused it: telemetry\.thermo\.example:443 presents sha256\/\S+; none is in the new pin set/);
  t.match(stdout, /forced past pre-flight by demo-operator: "the certificate team says/);
  if (/each verified by its own handshakes \(verified: 1000\)/.test(stdout)) {
    // A gateway that counts health checks: the devices revert by themselves and the wave is held on their acks.
    t.match(stdout, /held in wave 1 \((\d+) devices\) on their reverted acks: failure_threshold \(telemetry\.thermo\.example:443\)/);
    const held = /held in wave 1 \((\d+) devices\).*reverted by themselves: (\d+) of (\d+)/.exec(stdout);
    t.ok(held && held[1] === held[2] && held[2] === held[3], 'every device of the wave reverted by itself');
    t.match(stdout, /stuck devices \(\d+\): th-\d+ reverted:telemetry\.thermo\.example:443/);
    t.match(stdout, /devices on seq 1: 1005/);
  } else {
    t.match(stdout, /held in wave 1 \(\d+ devices\) on their pin-failure reports: failure_threshold/);
    t.match(stdout, /rollback completed: the previous pins as seq 3/);
  }
  t.match(stdout, /devices locked out: 0 \(every device called home/);
});
