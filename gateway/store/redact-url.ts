// A database URL as people may see it (docs/storage.md): in messages and logs, never its password.

/** The URL as people may see it: the password left out. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(an unparseable URL)';
  }
}
