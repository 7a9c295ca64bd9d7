// Device ids (docs/architecture.md §5): a device's MQTT client id, username and topic level are all its id,
// so one syntax check at the edge keeps every topic the gateway builds free of `/`, `+` and `#`.
//
// An id is 1–64 characters of `A-Z a-z 0-9 . _ : -` and is not made only of dots. The charset
// keeps ids single topic levels, URL path segments and file-name safe; dot-only ids (".", "..")
// are refused because clients, proxies and path joins read them as "this/parent directory", so
// `/devices/..` in the HTTP API or a per-device file would address something else.
//
//   isDeviceId('meter-0042');   // true
//   checkDeviceId('a/b');       // { ok: false, code: 'PW_DEVICE_ID_CHAR', message: '… "/" at index 1' }

export const DEVICE_ID_MAX_LENGTH = 64;

export type DeviceIdErrorCode =
  | 'PW_DEVICE_ID_TYPE'
  | 'PW_DEVICE_ID_LENGTH'
  | 'PW_DEVICE_ID_CHAR'
  | 'PW_DEVICE_ID_DOTS';

export type DeviceIdCheck =
  | { ok: true; id: string }
  | { ok: false; code: DeviceIdErrorCode; message: string };

const DEVICE_ID = /^[A-Za-z0-9._:-]{1,64}$/;
const ONLY_DOTS = /^\.+$/;
const ALLOWED_CHAR = /[A-Za-z0-9._:-]/;

/** True when `s` is a device id. */
export function isDeviceId(s: unknown): s is string {
  return typeof s === 'string' && DEVICE_ID.test(s) && !ONLY_DOTS.test(s);
}

/** `{ ok: true, id }`, or the first thing wrong with `s`: its type, its length, a character, or only dots. */
export function checkDeviceId(s: unknown): DeviceIdCheck {
  if (typeof s !== 'string') {
    return fail('PW_DEVICE_ID_TYPE', `expected device id to be a string, got ${s === null ? 'null' : typeof s}`);
  }
  if (s.length < 1 || s.length > DEVICE_ID_MAX_LENGTH) {
    const expected = `expected device id of 1 to ${DEVICE_ID_MAX_LENGTH} characters`;
    return fail('PW_DEVICE_ID_LENGTH', `${expected}, got length=${s.length}`);
  }
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (!ALLOWED_CHAR.test(c)) {
      return fail(
        'PW_DEVICE_ID_CHAR',
        `device id may hold only A-Z a-z 0-9 . _ : -, got ${describeChar(s, i)} at index ${i}`,
      );
    }
  }
  if (ONLY_DOTS.test(s)) {
    return fail('PW_DEVICE_ID_DOTS', `device id may not be only dots, got ${JSON.stringify(s)}`);
  }
  return { ok: true, id: s };
}

function fail(code: DeviceIdErrorCode, message: string): DeviceIdCheck {
  return { ok: false, code, message };
}

// JSON quoting shows control characters and quotes unambiguously; the code point names the rest.
function describeChar(s: string, i: number): string {
  const cp = s.codePointAt(i) ?? 0;
  const hex = `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  return cp >= 0x20 && cp < 0x7f ? `${JSON.stringify(String.fromCodePoint(cp))} (${hex})` : hex;
}
