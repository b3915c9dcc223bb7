/**
 * Pure parsers and formatters for the few HTTP header fields a ranged download
 * depends on. Each one is strict: a value that does not match the grammar is
 * `undefined`, because a misread range or size would put bytes at the wrong offset.
 */

/** A satisfied byte range as the server reports it: `bytes start-end/size`. */
export interface ContentRange {
  start: number;
  /** Inclusive, like the header. */
  end: number;
  /** The complete length, or `undefined` for `/*` (unknown). */
  size: number | undefined;
}

/** A non-negative decimal integer that is exactly representable, or `undefined`. */
function parseSafeDigits(text: string): number | undefined {
  if (!/^[0-9]+$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

// RFC 9110 14.4: Content-Range = range-unit SP ( range-resp / unsatisfied-range ),
// range-resp = incl-range "/" ( complete-length / "*" ). The range unit is compared
// case-insensitively (RFC 9110 14.1). One `=` in place of the SP is read as the SP:
// servers in the wild copy the request's `bytes=` (aria2 #509, swift3 #38), and with a
// complete range and length after it nothing else can be meant. Anything looser (two
// separators, spaces around the dash, no unit, no length) stays refused.
const CONTENT_RANGE = /^bytes[ =]([0-9]+)-([0-9]+)\/([0-9]+|\*)$/i;
const UNSATISFIED_RANGE = /^bytes[ =]\*\/([0-9]+)$/i;

/**
 * A satisfied `Content-Range` (RFC 9110 14.4), `bytes a-b/N` or `bytes a-b/*`, also
 * with `=` for the space (see above); `undefined` for anything else, including a
 * range that is backwards or past its complete length.
 */
export function parseContentRange(value: string | null | undefined): ContentRange | undefined {
  const match = CONTENT_RANGE.exec(value?.trim() ?? "");
  if (!match) return undefined;
  const start = parseSafeDigits(match[1] ?? "");
  const end = parseSafeDigits(match[2] ?? "");
  if (start === undefined || end === undefined) return undefined;
  const sizeText = match[3] ?? "";
  const size = sizeText === "*" ? undefined : parseSafeDigits(sizeText);
  if (sizeText !== "*" && size === undefined) return undefined;
  // RFC 9110 14.4: a range whose last-pos is less than its first-pos, or whose
  // complete-length is less than or equal to its last-pos, is invalid.
  if (end < start) return undefined;
  if (size !== undefined && end >= size) return undefined;
  return { start, end, size };
}

/** The complete length from a `416`'s `Content-Range: bytes *\/N` (RFC 9110 15.5.17), also `bytes=*\/N`. */
export function parseUnsatisfiedRange(value: string | null | undefined): number | undefined {
  const match = UNSATISFIED_RANGE.exec(value?.trim() ?? "");
  return match ? parseSafeDigits(match[1] ?? "") : undefined;
}

/** A `Range` request header value for one inclusive byte range (RFC 9110 14.2). */
export function formatRange(start: number, endInclusive: number): string {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(endInclusive) || start < 0 || endInclusive < start) {
    throw new RangeError(`invalid byte range ${start}-${endInclusive}`);
  }
  return `bytes=${start}-${endInclusive}`;
}

// RFC 9110 8.8.3: entity-tag = [ weak ] opaque-tag; opaque-tag = DQUOTE *etagc DQUOTE;
// etagc = %x21 / %x23-7E / obs-text. A strong tag is one without the `W/` prefix.
const STRONG_ETAG = /^"[\x21\x23-\x7e\x80-\xff]*"$/;

export function isStrongEtag(etag: string | null | undefined): etag is string {
  return etag !== null && etag !== undefined && STRONG_ETAG.test(etag);
}

/**
 * The `If-Range` validator for a resumed or parallel request. RFC 9110 13.1.5: a
 * client must not send a weak entity tag in If-Range, so a weak-only server gets
 * the Last-Modified date, but only a strong one: RFC 9110 8.8.2.2 makes a date strong
 * when the answer's `Date` (if it gave one) is at least a second later. Apache, in the
 * first second after a file changes, answers a weaker date in If-Range with the whole
 * file every time; without If-Range the validators are checked on every answer
 * instead (verdict.ts). A value that is not an HTTP-date would make the server ignore
 * If-Range, so it is not sent. `nowMs` is wall time (the job's `clock.wall()`), for
 * `parseHttpDate`'s two-digit years.
 */
export function ifRangeValue(v: { etag: string | null; lastModified: string | null; date?: string | null | undefined }, nowMs: number): string | undefined {
  if (isStrongEtag(v.etag)) return v.etag;
  const modified = v.lastModified === null ? undefined : parseHttpDate(v.lastModified, nowMs);
  if (modified === undefined) return undefined;
  const date = v.date === null || v.date === undefined ? undefined : parseHttpDate(v.date, nowMs);
  if (date !== undefined && date - modified < 1000) return undefined;
  return v.lastModified!;
}

/**
 * The `If-Range` to send after `sent` proved useless: the server answered it with the
 * whole file of the same version (a CDN that does so whenever If-Range carries an
 * ETag, seen in the wild: aria2-next #43). The ETag gives way to the Last-Modified
 * date, a date to nothing (the validators of each answer are still checked); sending
 * the same one again would only fetch the whole file again. `nowMs` as for `ifRangeValue`.
 */
export function ifRangeAfterUseless(sent: string, v: { etag: string | null; lastModified: string | null }, nowMs: number): string | undefined {
  if (sent === v.etag && v.lastModified !== null && parseHttpDate(v.lastModified, nowMs) !== undefined) return v.lastModified;
  return undefined;
}

/**
 * RFC 9110 8.6: Content-Length = 1*DIGIT. A recipient may accept a list of identical
 * values (a proxy that merged duplicate fields), so `42, 42` is 42 and `42, 43` is
 * invalid.
 */
export function parseContentLength(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined) return undefined;
  const parts = value.split(",").map((part) => part.trim());
  const first = parts[0] ?? "";
  if (parts.some((part) => part !== first)) return undefined;
  return parseSafeDigits(first);
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const MONTH = "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)";
const TIME = "([0-9]{2}):([0-9]{2}):([0-9]{2})";
// RFC 9110 5.6.7: the preferred IMF-fixdate, and the two obsolete forms a recipient
// must still accept. HTTP-date is case-sensitive.
const IMF_FIXDATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) ${MONTH} ([0-9]{4}) ${TIME} GMT$`);
const RFC850_DATE = new RegExp(
  `^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), ([0-9]{2})-${MONTH}-([0-9]{2}) ${TIME} GMT$`,
);
const ASCTIME_DATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ${MONTH} ([0-9]{2}| [0-9]) ${TIME} ([0-9]{4})$`);

/**
 * An HTTP-date (RFC 9110 5.6.7) as milliseconds since the epoch, or `undefined`.
 * `nowMs` (wall time, ms since the epoch: the job's `clock.wall()`) resolves the
 * two-digit years of the obsolete RFC 850 form.
 */
export function parseHttpDate(value: string | null | undefined, nowMs: number): number | undefined {
  const text = value?.trim() ?? "";
  let match = IMF_FIXDATE.exec(text);
  if (match) return utc(match[3], match[2], match[1], match[4], match[5], match[6]);
  match = ASCTIME_DATE.exec(text);
  if (match) return utc(match[6], match[1], match[2], match[3], match[4], match[5]);
  match = RFC850_DATE.exec(text);
  if (!match) return undefined;
  // RFC 9110 5.6.7: a two-digit year more than 50 years in the future is the most
  // recent past year with the same last two digits.
  const nowYear = new Date(nowMs).getUTCFullYear();
  let year = nowYear - (nowYear % 100) + Number(match[3]);
  if (year > nowYear + 50) year -= 100;
  return utc(String(year), match[2], match[1], match[4], match[5], match[6]);
}

function utc(
  yearText: string | undefined,
  monthName: string | undefined,
  dayText: string | undefined,
  hourText: string | undefined,
  minuteText: string | undefined,
  secondText: string | undefined,
): number | undefined {
  const year = Number(yearText);
  const month = MONTHS.indexOf(monthName ?? "");
  const day = Number(dayText?.trim());
  const hour = Number(hourText);
  const minute = Number(minuteText);
  // RFC 9110 5.6.7 allows second 60 (a leap second); the epoch count has none.
  const second = Math.min(Number(secondText), 59);
  if (hour > 23 || minute > 59 || Number(secondText) > 60) return undefined;
  // setUTCFullYear, unlike Date.UTC, does not read years 0-99 as 1900-1999.
  const date = new Date(0);
  date.setUTCFullYear(year, month, day);
  date.setUTCHours(hour, minute, second, 0);
  // A 31 Feb would roll into March; a date that does not exist is not a date.
  return date.getUTCDate() === day ? date.getTime() : undefined;
}

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A header value as text. undici hands over each header byte as one Latin-1
 * character, so nothing is lost; servers in the wild put raw UTF-8 in `Location` and
 * `Content-Disposition` (RFC 9110 5.5 allows only obs-text there, which most
 * browsers read as UTF-8). Read as UTF-8, falling back to Latin-1 only when the
 * bytes are not valid UTF-8.
 */
export function headerText(latin1: string): string {
  // Plain ASCII is the same text either way.
  if (!/[\x80-\xff]/.test(latin1)) return latin1;
  try {
    return STRICT_UTF8.decode(Buffer.from(latin1, "latin1"));
  } catch {
    return latin1;
  }
}
