// A dead replica's broker session, drained by the leader (docs/architecture.md §8). Mosquitto keeps
// dealing a share of the shared subscription to a member with a persistent session while it is
// away, and keeps what it had been sent and not acknowledged there: nobody else is given those
// messages. The leader, once it holds the dead replica's own lock (so that replica is not running,
// and cannot start while this runs), connects once under its client id, takes what the session
// holds through the usual path (committed, then PUBACKed), and ends the session (`retire`: Session
// Expiry 0), so the broker deals that member nothing more. The replica, when it comes back,
// subscribes again on its new session.
import { ExternalBroker } from '../broker/external.ts';
import type { ExternalTransportOptions } from '../broker/external-transport.ts';
import type { Logger } from '../logger.ts';
import type { DeviceMessageKind } from '../topics.ts';

/** Resolves with how many device messages the session held, once it is ended. */
export async function drainSession(o: ExternalTransportOptions, clientId: string, onMessage: (id: string, kind: DeviceMessageKind, payload: Buffer) => Promise<void>, log: Logger): Promise<number> {
  const broker = await ExternalBroker.start({
    ...o.client,
    url: o.url,
    ...(o.username !== undefined && { username: o.username }),
    password: o.password,
    ...(o.ca !== undefined && { ca: o.ca }),
    clientId,
    // the shared group only: no retained presence of every device comes with it
    presence: 'shared',
    logger: o.logger,
    onMessage,
  });
  await broker.retire();
  const n = broker.counters().messagesIn;
  log.info({ replica: clientId, messages: n }, 'replica: drained the broker session of a replica that is gone');
  return n;
}
