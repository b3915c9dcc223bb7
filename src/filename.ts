/**
 * Content-Disposition / URL → a safe base name for the output. The server chooses
 * the name, so it is hostile input: it must never name a path outside `--dir`, a
 * hidden file, a device, or something the file system refuses.
 */

import { decodeExtended, parse } from "content-disposition";

/** The name used when neither the server nor the URL offers one. */
export const FALLBACK_NAME = "download";

// RFC 9110 5.6.2 token, 5.6.4 quoted-string; RFC 6266 4.1:
// disposition-type *( OWS ";" OWS disposition-parm ), disposition-parm = token "=" ( token / quoted-string ).
const TOKEN = String.raw`[!#$%&'*+\-.^_\`|~0-9A-Za-z]+`;
const DISPOSITION_TYPE = new RegExp(String.raw`[ \t]*${TOKEN}`, "y");
const DISPOSITION_PARAMETER = new RegExp(String.raw`[ \t]*;[ \t]*(${TOKEN})[ \t]*=[ \t]*(?:${TOKEN}|("(?:[^"\\]|\\[^])*"))`, "y");
// A trailing ";" is common in the wild and harmless.
const DISPOSITION_END = /[ \t]*(?:;[ \t]*)?$/y;

/**
 * How each parameter of a Content-Disposition value is written (by lower-cased name),
 * or `undefined` when the value breaks RFC 6266 4.1 or names a parameter twice.
 * The content-disposition package reads past both (it keeps the first of two
 * `filename`s and skips garbage after a value); a name guessed from a header the
 * server got wrong may not be the one it meant, so then the URL names the file.
 */
function parameterForms(header: string): Map<string, "token" | "quoted"> | undefined {
  DISPOSITION_TYPE.lastIndex = 0;
  if (!DISPOSITION_TYPE.test(header)) return undefined;
  const forms = new Map<string, "token" | "quoted">();
  for (let position = DISPOSITION_TYPE.lastIndex; ; position = DISPOSITION_PARAMETER.lastIndex) {
    DISPOSITION_END.lastIndex = position;
    if (DISPOSITION_END.test(header)) return forms;
    DISPOSITION_PARAMETER.lastIndex = position;
    const match = DISPOSITION_PARAMETER.exec(header);
    if (!match) return undefined;
    const name = (match[1] ?? "").toLowerCase();
    if (forms.has(name)) return undefined;
    forms.set(name, match[2] === undefined ? "token" : "quoted");
  }
}

/**
 * Header values arrive as ISO-8859-1 code units (fetch's ByteString), yet servers
 * commonly put raw UTF-8 in a plain `filename=`; browsers read it as UTF-8 when it
 * is valid UTF-8, and so do we. A true Latin-1 name is rarely valid UTF-8.
 */
function reinterpretUtf8(text: string): string {
  if (!/[\x80-\xff]/.test(text) || /[^\x00-\xff]/.test(text)) return text;
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(Buffer.from(text, "latin1"));
  } catch {
    return text;
  }
}

/**
 * The file name a Content-Disposition value gives, unsanitized. RFC 6266 4.3:
 * `filename*` (RFC 8187, any language, UTF-8 or ISO-8859-1) is preferred over
 * `filename`, which remains the fallback when `filename*` cannot be decoded.
 */
export function parseContentDisposition(value: string | null | undefined): string | undefined {
  if (value === null || value === undefined) return undefined;
  const forms = parameterForms(value);
  if (!forms) return undefined;
  const { parameters } = parse(value, { extended: false });
  const extended = parameters["filename*"];
  // An ext-value is a token; a quoted one is invalid (RFC 8187 3.2.1).
  const decoded = extended !== undefined && forms.get("filename*") === "token" ? decodeExtended(extended) : undefined;
  if (decoded) return decoded;
  const plain = parameters["filename"];
  return plain ? reinterpretUtf8(plain) : undefined;
}

// Names are limited to 255 bytes, and rangeget adds up to 32 of its own
// (`.part.lock.<pid>.<random>.tmp`) next to the output, so a name keeps room for them.
const MAX_NAME_BYTES = 255 - 32;
const MAX_KEPT_EXTENSION_CHARS = 16;

// Windows device names, also with any extension ("nul.tar.gz" is NUL). Microsoft's
// "Naming Files, Paths, and Namespaces" also lists COM0/LPT0 and the superscript digits.
const WINDOWS_DEVICE_NAME = /^(?:CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³]) *(?:\..*)?$/i;
// C0 and C1 control characters: terminals interpret them, file systems refuse NUL.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/g;
// Bidirectional overrides and isolates let "exe.txt" display for "txt.exe"
// (the right-to-left override file-name spoofing trick); they have no place in a name.
const BIDI_CONTROLS = /[\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
// Characters Windows forbids in names; harmless elsewhere, so replaced, not dropped.
const WINDOWS_FORBIDDEN = /[<>:"|?*]/g;
// A lone surrogate has no UTF-8 form: file systems would store U+FFFD anyway.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function utf8Length(text: string): number {
  return Buffer.byteLength(text, "utf8");
}

/** The longest prefix of `text` within `maxBytes` UTF-8 bytes, whole code points only. */
function truncateUtf8(text: string, maxBytes: number): string {
  let kept = "";
  let bytes = 0;
  for (const codePoint of text) {
    bytes += utf8Length(codePoint);
    if (bytes > maxBytes) break;
    kept += codePoint;
  }
  return kept;
}

/**
 * The longest suffix of at most 16 characters after a dot, so ".tar.gz" survives
 * whole; "" when the last dot is further back than that.
 */
function extensionOf(name: string): string {
  const tail = name.slice(1).slice(-(MAX_KEPT_EXTENSION_CHARS + 1));
  const dot = tail.indexOf(".");
  return dot === -1 ? "" : tail.slice(dot);
}

/** Cut to MAX_NAME_BYTES, keeping the extension so the type survives. */
function truncateName(name: string): string {
  if (utf8Length(name) <= MAX_NAME_BYTES) return name;
  const extension = extensionOf(name);
  const stem = truncateUtf8(name.slice(0, name.length - extension.length), MAX_NAME_BYTES - utf8Length(extension));
  return extension === "" ? stem.replace(/[. ]+$/, "") : stem + extension;
}

/**
 * A base name that is safe to create inside the output directory on Linux, macOS and
 * Windows, or `undefined` when nothing usable is left. Never a path, never hidden,
 * never `.` or `..`, never a device, at most 223 UTF-8 bytes.
 */
export function sanitizeFileName(name: string): string | undefined {
  const baseName = name.slice(Math.max(name.lastIndexOf("/"), name.lastIndexOf("\\")) + 1);
  const cleaned = baseName
    .replace(LONE_SURROGATE, "\ufffd")
    .replace(CONTROL_CHARS, "")
    .replace(BIDI_CONTROLS, "")
    .replace(WINDOWS_FORBIDDEN, "_")
    // Leading dots would hide the file (or make "..") and Windows drops trailing
    // dots and spaces, so "a.txt." and "a.txt" would collide.
    .replace(/^[. ]+/, "")
    .replace(/[. ]+$/, "");
  if (cleaned === "") return undefined;
  return truncateName(WINDOWS_DEVICE_NAME.test(cleaned) ? `_${cleaned}` : cleaned);
}

/** Percent-decodes each run of escapes; a run that is not valid UTF-8 stays as written. */
function percentDecode(text: string): string {
  return text.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      return run;
    }
  });
}

/** The sanitized last non-empty path segment of `url`, or `undefined`. */
export function fileNameFromUrl(url: string): string | undefined {
  let pathname: string;
  try {
    pathname = new URL(url).pathname;
  } catch {
    return undefined;
  }
  const segment = pathname.split("/").filter((part) => part !== "").at(-1);
  return segment === undefined ? undefined : sanitizeFileName(percentDecode(segment));
}

/** The output name: the server's, else the URL's, else "download". */
export function chooseFileName(contentDisposition: string | null | undefined, url: string): string {
  const fromHeader = parseContentDisposition(contentDisposition);
  const sanitized = fromHeader === undefined ? undefined : sanitizeFileName(fromHeader);
  return sanitized ?? fileNameFromUrl(url) ?? FALLBACK_NAME;
}
