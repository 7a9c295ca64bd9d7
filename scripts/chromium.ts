// Debian's Chromium, driven by playwright-core, for the console's browser tests and its benchmark.
// Never a browser of playwright's own: nothing is downloaded (`.ci/run` installs Debian's
// `chromium` when it is missing). Headless, no sandbox (root in CI), and every switch that would
// make it talk to anything but the page under test turned off. playwright's launch() gives each run
// a fresh profile (its own --user-data-dir, in a temp dir) and removes it at close.
import { chromium, type Browser } from 'playwright-core';

/** PINWAVE_CHROMIUM, or Debian's. */
export const CHROMIUM = process.env.PINWAVE_CHROMIUM || '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
  '--disable-quic',
  '--disable-dev-shm-usage',
];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS }).catch((err: Error) => {
    throw new Error(`cannot start ${CHROMIUM} (install Debian's chromium; .ci/run does): ${err.message.split('\n')[0]}`);
  });
}
