// The `pinwave` command: one subcommand, one module under scripts/commands/. This file is the
// dispatcher, a plain switch you can read top to bottom. Exit codes: 0 ok, 1 failed/rejected/held,
// 2 usage; a missing command is a usage error whose help goes to stdout, as git's does, so
// `pinwave | less` shows it. Each command module exports `main(args, io): Promise<number>`.
import { UsageError, processIo, type Io } from './args.ts';
import { ApiError } from './api-client.ts';

const HELP = `pinwave — over-the-air certificate-pin updates for IoT fleets

Usage: pinwave <command> [options]
       pinwave --version

Keys, pins and bundles:
  keygen --out DIR                   make an Ed25519 signing key pair (signing.key, signing.pub)
  pin FILE... | --connect HOST:PORT  print the pin-sha256 of each certificate
  bundle create|inspect|verify       make, read and check signed pin bundles
  manifest create|validate           make and check firmware manifests

The gateway and the fleet:
  gateway --data DIR --key KEY.pem   serve MQTT (devices) and the HTTP API (operators)
  token hash|new                     API tokens (hashes) for the gateway config
  config check FILE                  check a gateway config file: every problem, or a summary
  devices provision|list|show|stuck|revoke
  bundle push|upload|list|show       have the gateway sign a bundle, or take one signed elsewhere; list them;
                                     one decoded, against its group's pins
  manifest push|list                 give the gateway a manifest; list the ones it knows
  rollout create|start|status|pause|resume|abort|rollback|approve|list
  telemetry pin-failures             pin-failure reports by endpoint and served pin
  forecast --endpoint HOST:PORT --pin|--cert|--connect   devices that would lock out if it served that key
  sim --api URL | --gateway mqtt://HOST:PORT   run a fleet of simulated devices against a gateway
  broker mosquitto-config --out DIR  a Mosquitto for external broker mode (devices' ACLs in the broker)
  store migrate --from DIR --to postgres://...  move a fleet from the data dir to PostgreSQL

Commands that talk to a gateway take --api URL (default $PINWAVE_API or http://127.0.0.1:8080)
and read the API token from $PINWAVE_TOKEN. Bundle and rollout ids may be given as unique prefixes
of at least 8 characters. Waves are numbered from 1.

Run "pinwave <command> --help" (or "pinwave help <command>") for a command's options.
Exit codes: 0 ok; 1 failed, rejected or held; 2 usage (a wrong flag, named in the message).
"pinwave" alone, or a command without its subcommand ("pinwave rollout"), prints its help on
standard output, exit 2.`;

type Command = (args: string[], io: Io) => Promise<number>;

async function load(name: string): Promise<Command | undefined> {
  // Imported on demand so `pinwave --help` and light commands start fast.
  switch (name) {
    case 'keygen': return (await import('./commands/keygen.ts')).main;
    case 'pin': return (await import('./commands/pin.ts')).main;
    case 'bundle': return (await import('./commands/bundle.ts')).main;
    case 'manifest': return (await import('./commands/manifest.ts')).main;
    case 'gateway': return (await import('./commands/gateway.ts')).main;
    case 'token': return (await import('./commands/token.ts')).main;
    case 'devices': return (await import('./commands/devices.ts')).main;
    case 'rollout': return (await import('./commands/rollout.ts')).main;
    case 'sim': return (await import('./commands/sim.ts')).main;
    case 'broker': return (await import('./commands/broker.ts')).main;
    case 'store': return (await import('./commands/store.ts')).main;
    case 'telemetry': return (await import('./commands/telemetry.ts')).main;
    case 'forecast': return (await import('./commands/forecast.ts')).main;
    case 'config': return (await import('./commands/config.ts')).main;
    default: return undefined;
  }
}

export async function run(argv: string[], io: Io = processIo): Promise<number> {
  const [name, ...rest] = argv;
  // `pinwave help CMD` is `pinwave CMD --help`
  if (name === 'help' && rest.length > 0 && rest[0] !== 'help') return run([rest[0], '--help'], io);
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(HELP);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V') {
    io.out((await import('../gateway/http/info.ts')).packageVersion());
    return 0;
  }
  if (name.startsWith('-')) {
    // `pinwave --api URL rollout list`: a command's options follow the command.
    let cmd: string | undefined;
    for (const a of rest) if (cmd === undefined && !a.startsWith('-') && (await load(a))) cmd = a;
    const flag = name.split('=')[0];
    io.err(`pinwave: unknown option "${flag}": options follow the command (${cmd ? `pinwave ${cmd} ... ${flag} ...` : 'pinwave <command> [options]'})\n\n${HELP}`);
    return 2;
  }
  const command = await load(name);
  if (!command) {
    io.err(`pinwave: unknown command "${name}"\n\n${HELP}`);
    return 2;
  }
  try {
    return await command(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`pinwave ${name}: ${err.message}`);
      if (err.usage) io.err(`\n${err.usage}`);
      return 2;
    }
    // With --json a failure is JSON too (README): scripts read standard output, and a plain line
    // there, or nothing, is what their JSON.parse chokes on.
    if (rest.includes('--json')) {
      io.out(JSON.stringify({ ok: false, error: failure(err) }, null, 2));
      return 1;
    }
    io.err(`pinwave ${name}: ${(err as Error).message}`);
    return 1;
  }
}

/** A failed command as its --json answer: the message, and for a gateway's answer its HTTP status and error code. */
function failure(err: unknown): { message: string; status?: number; code?: string } {
  const message = err instanceof Error ? err.message : String(err);
  if (!(err instanceof ApiError)) return { message };
  const code = (err.body as { code?: unknown } | undefined)?.code;
  return { message, ...(err.status > 0 && { status: err.status }), ...(typeof code === 'string' && { code }) };
}

