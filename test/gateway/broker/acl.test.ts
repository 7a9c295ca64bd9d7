// The publish ACL (docs/architecture.md §5) as the broker asks it: ownPublishKind classifies a topic
// in place, without parsing it into parts; its answers must be exactly those of parsing it.
import t from 'tap';
import { ownPublishKind, publishDenial, publishDenialOf } from '../../../gateway/broker/acl.ts';
import { parsePresenceTopic } from '../../../gateway/broker/presence-topic.ts';
import { isDeviceMessageKind, parseDeviceTopic } from '../../../gateway/topics.ts';

/** The classification by parsing: what the broker decided before ownPublishKind. */
function parsedKind(deviceId: string, topic: string): string | null {
  if (parsePresenceTopic(topic) === deviceId) return 'presence';
  const parsed = parseDeviceTopic(topic);
  return parsed && parsed.id === deviceId && isDeviceMessageKind(parsed.kind) ? parsed.kind : null;
}

const IDS = ['m-1', 'm-12', 'm', 'a.b:c_d-e', 'x'.repeat(64), '..', '', 'm/1', 'm+', 'M-1'];
const LEVELS = ['state', 'ack', 'telemetry', 'presence', 'bundle', '', '#', '+', 'ack/x', 'acks', 'stat', 'Ack', 'state/', '/state'];

function topicsFor(id: string): string[] {
  const out = ['', '#', 'pinwave/v1/devices/', 'pinwave/v1/devices', 'pinwave/v1/devices/+/ack', 'pinwave/v1/devices/#'];
  for (const other of IDS) {
    for (const level of LEVELS) {
      out.push(`pinwave/v1/devices/${other}/${level}`, `pinwave/v2/devices/${other}/${level}`, `xpinwave/v1/devices/${other}/${level}`, `pinwave/v1/devices/${other}${level}`);
    }
  }
  out.push(`pinwave/v1/devices/${id}/ack/ack`, `pinwave/v1/devices/${id}//ack`, `pinwave/v1/devices//${id}/ack`, `pinwave/v1/devices/${id}-x/ack`);
  return out;
}

t.test("ownPublishKind answers as parsing the topic does, for the device's own topics and every other", async (t) => {
  let compared = 0;
  let own = 0;
  for (const id of IDS) {
    for (const topic of topicsFor(id)) {
      const kind = ownPublishKind(id, topic);
      if (kind !== parsedKind(id, topic)) t.fail(`${JSON.stringify(id)} on ${JSON.stringify(topic)}: ${kind}, parsing says ${parsedKind(id, topic)}`);
      compared++;
      if (kind !== null) own++;
    }
  }
  t.ok(compared > 5000, `${compared} topics compared`);
  // 6 valid ids (of 10) × state, ack, telemetry, presence, and each one's own state again (`${id}` + '/state')
  t.equal(own, 30, 'only a valid id, on its own state/ack/telemetry/presence');
  t.equal(ownPublishKind('m-1', 'pinwave/v1/devices/m-1/bundle'), null, 'a device may not publish its own bundle');
  t.equal(ownPublishKind('m-1', 'pinwave/v1/devices/m-12/ack'), null, "an id's prefix is not the id");
  t.equal(ownPublishKind('m/1', 'pinwave/v1/devices/m/1/ack'), null, 'an id that is not a device id owns nothing');
});

t.test('publishDenial: each refusal, for presence and for messages', async (t) => {
  const p = (topic: string, qos: number, retain: boolean, size = 10) => ({ topic, qos, retain, size });
  const own = 'pinwave/v1/devices/m-1';
  t.equal(publishDenial('m-1', p(`${own}/ack`, 1, false), 100), null);
  t.equal(publishDenial('m-1', p(`${own}/ack`, 2, false), 100), 'publish_qos');
  t.equal(publishDenial('m-1', p(`${own}/ack`, 1, true), 100), 'publish_retain');
  t.equal(publishDenial('m-1', p(`${own}/ack`, 1, false, 101), 100), 'payload_too_large');
  t.equal(publishDenial('m-1', p(`${own}/ack`, 1, false, 100), 100), null, 'the limit itself is allowed');
  t.equal(publishDenial('m-1', p(`${own}/presence`, 1, true), 100), null, 'presence may be retained (the broker clears the flag)');
  t.equal(publishDenial('m-1', p(`${own}/presence`, 2, true), 100), 'publish_qos');
  t.equal(publishDenial('m-1', p(`${own}/presence`, 0, false, 101), 100), 'payload_too_large');
  t.equal(publishDenial('m-1', p('pinwave/v1/devices/m-2/ack', 1, false), 100), 'publish_topic');
  t.equal(publishDenial('m-1', p(`${own}/bundle`, 3, true, 1000), 100), 'publish_topic', 'the topic is judged first');
  t.equal(publishDenialOf(null, { qos: 0, retain: false, size: 0 }, 100), 'publish_topic');
});
