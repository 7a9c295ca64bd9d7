// The ACL against a real MQTT implementation nobody here wrote: Debian's mosquitto clients
// (.ci/run installs mosquitto-clients when missing).
import t from 'tap';
import { execFile } from 'node:child_process';
import { harness, newPins, until } from '../fixtures/gateway.ts';

type Run = { code: number | string; stdout: Buffer; stderr: string };
const run = (cmd: string, args: string[], timeoutMs = 10_000) =>
  new Promise<Run>((resolve) =>
    execFile(cmd, args, { encoding: 'buffer', timeout: timeoutMs }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as NodeJS.ErrnoException & { signal?: string }).code ?? (err as { signal?: string }).signal ?? 1) : 0, stdout, stderr: stderr.toString() }),
    ),
  );

t.test('mosquitto clients: wrong token and another device\'s topics are refused; a device receives its bundle', async (t) => {
  const probe = await run('mosquitto_pub', ['--help']);
  if (probe.code === 'ENOENT') return t.fail('mosquitto_pub is not installed (.ci/run installs mosquitto-clients)');
  const h = await harness(t);
  const { devices: [a, b] } = await h.gw.provision([{ id: 'dev-a', group: 'thermostats' }, { id: 'dev-b', group: 'thermostats' }]);
  const base = ['-h', '127.0.0.1', '-p', String(h.gw.ports.tcp), '-i', a.id, '-u', a.id];

  const wrong = await run('mosquitto_pub', [...base, '-P', 'not-the-token', '-t', `pinwave/v1/devices/${a.id}/state`, '-m', 'x']);
  t.not(wrong.code, 0, 'a wrong token is refused');
  t.match(wrong.stderr, /bad user name or password/i);

  const otherSub = await run('mosquitto_sub', [...base, '-P', a.token, '-t', `pinwave/v1/devices/${b.id}/bundle`, '-C', '1', '-W', '2']);
  t.match(otherSub.stderr, /All subscription requests were denied/, 'subscribing to another device\'s bundle topic is refused');
  const wildcard = await run('mosquitto_sub', [...base, '-P', a.token, '-t', 'pinwave/v1/devices/+/bundle', '-C', '1', '-W', '2']);
  t.match(wildcard.stderr, /All subscription requests were denied/, 'and so is a wildcard across devices');

  const otherPub = await run('mosquitto_pub', [...base, '-P', a.token, '-t', `pinwave/v1/devices/${b.id}/ack`, '-m', 'forged', '-q', '1']);
  t.not(otherPub.code, 0, 'publishing on another device\'s ack topic costs the connection');
  t.equal((await h.gw.getDevice(b.id)).history.length, 0, 'and nothing was recorded for that device');
  const denied = h.gw.counters().broker.aclDenied;
  t.ok(denied.subscribe >= 2 && denied.publish_topic >= 1, 'every denial is counted');

  // A device receives its bundle: -N prints the payload bytes as they are.
  const received = run('mosquitto_sub', [...base, '-P', a.token, '-c', '-q', '1', '-t', `pinwave/v1/devices/${a.id}/bundle`, '-C', '1', '-W', '10', '-N']);
  await until(() => h.gw.isConnected(a.id), 5000, 'mosquitto_sub to connect');
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  await h.gw.createRollout({ bundle: bundle.id, target: { devices: [a.id] }, waves: [{ size: '100%' }], start: true }, 'alice');
  const got = await received;
  t.equal(got.code, 0, got.stderr);
  t.equal(got.stdout.toString('base64'), bundle.bytes, 'the exact COSE_Sign1 bytes arrived');
});
