// gateway/rollout/instant.ts: the instants operators type are ISO 8601 dates, or date-times with a zone, that exist.
import t from 'tap';
import { parseInstant } from '../../../gateway/rollout/instant.ts';

t.test('an ISO 8601 date, or a date-time with a zone, that exists is read; anything Date.parse would bend into another date is NaN', async (t) => {
  t.equal(parseInstant('2027-03-01'), Date.UTC(2027, 2, 1), 'a bare date is midnight UTC');
  t.equal(parseInstant('2027-01-01T12:00+05:30'), Date.UTC(2027, 0, 1, 6, 30));
  t.equal(parseInstant('2027-12-31T23:59:59.999Z'), Date.UTC(2027, 11, 31, 23, 59, 59, 999));
  t.equal(parseInstant('2024-02-29'), Date.UTC(2024, 1, 29), 'a leap day of a leap year');
  t.equal(parseInstant('0004-02-29'), Date.parse('0004-02-29'), 'years below 100 are not read as 1900s');
  for (const s of ['2023-02-29', '2027-02-30', '2027-04-31', '2027-13-01', '2027-01-00', '2027-01-01T25:00Z', '2027-01-01T12:00', '1', '12', 'March 7', '+275760-09-13T00:00:00Z', '']) {
    t.ok(Number.isNaN(parseInstant(s)), JSON.stringify(s));
  }
});
