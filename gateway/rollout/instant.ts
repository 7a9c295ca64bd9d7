// An instant an operator types (a rollout's deadline, the forecast's date, a device clock): an ISO 8601
// date-time with a time zone (Z or ±hh:mm), or a bare date (midnight UTC). Date.parse alone is not a
// check: it reads "1" as 2001-01-01, "March 7" as a day in 2001, a time without a zone in the host's
// own zone, and 2027-02-30 as March 2, so a typo would become another date without a word.
//
//   parseInstant('2027-03-01T12:00:00Z')  // epoch ms
//   parseInstant('2027-02-30')            // NaN: February has no 30th

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(?:Z|[+-]\d{2}:\d{2}))?$/;

/** `text` as epoch milliseconds, or NaN when it is no ISO 8601 date (with a zone when it has a time) or names a day its month lacks. */
export function parseInstant(text: string): number {
  const m = ISO.exec(text);
  if (!m) return NaN;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const calendar = new Date(0);
  calendar.setUTCFullYear(year, month - 1, day); // not Date.UTC, which reads years 0-99 as 1900-1999
  if (calendar.getUTCMonth() !== month - 1 || calendar.getUTCDate() !== day) return NaN;
  return Date.parse(text);
}
