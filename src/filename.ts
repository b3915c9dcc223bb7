/**
 * Content-Disposition / URL → a safe base name for the output. The server chooses
 * the name, so it is hostile input: it must never name a path outside `--dir`, a
 * hidden file, a device, or something the file system refuses.
 */

/** The name used when neither the server nor the URL offers one. */
const FALLBACK_NAME = "download";

// RFC 9110 5.6.2: tchar.
const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

interface Parameter {
  value: string;
  quoted: boolean;
}

/**
 * The parameters of a Content-Disposition value by lower-cased name, or `undefined`
 * when it does not follow RFC 6266 4.1:
 * disposition-type *( OWS ";" OWS disposition-parm ), disposition-parm = token "=" ( token / quoted-string ).
 */
function parseDispositionParameters(header: string): Map<string, Parameter> | undefined {
  let pos = 0;
  const skipWhitespace = (): void => {
    while (header[pos] === " " || header[pos] === "\t") pos += 1;
  };
  const readToken = (): string => {
    const start = pos;
    while (pos < header.length && TOKEN_CHAR.test(header[pos] ?? "")) pos += 1;
    return header.slice(start, pos);
  };
  // RFC 9110 5.6.4: quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE.
  const readQuotedString = (): string | undefined => {
    let text = "";
    pos += 1;
    while (pos < header.length) {
      const char = header[pos] ?? "";
      pos += 1;
      if (char === '"') return text;
      if (char === "\\") {
        if (pos >= header.length) return undefined;
        text += header[pos] ?? "";
        pos += 1;
      } else {
        text += char;
      }
    }
    return undefined;
  };

  skipWhitespace();
  if (readToken() === "") return undefined;
  const parameters = new Map<string, Parameter>();
  for (;;) {
    skipWhitespace();
    if (pos >= header.length) return parameters;
    if (header[pos] !== ";") return undefined;
    pos += 1;
    skipWhitespace();
    // A trailing ";" is common in the wild and harmless.
    if (pos >= header.length) return parameters;
    const name = readToken().toLowerCase();
    if (name === "") return undefined;
    skipWhitespace();
    if (header[pos] !== "=") return undefined;
    pos += 1;
    skipWhitespace();
    const quoted = header[pos] === '"';
    const value = quoted ? readQuotedString() : readToken();
    if (value === undefined || (!quoted && value === "")) return undefined;
    // RFC 6266 4.1: a value with the same parameter twice is invalid; picking one
    // of two names would be a guess.
    if (parameters.has(name)) return undefined;
    parameters.set(name, { value, quoted });
  }
}

// RFC 8187 3.2.1: ext-value = charset "'" [ language ] "'" value-chars, where
// value-chars = *( pct-encoded / attr-char ).
const EXT_VALUE = /^([!#$%&+\-^_`{}~0-9A-Za-z]+)'([0-9A-Za-z-]*)'((?:%[0-9A-Fa-f]{2}|[!#$&+\-.^_`|~0-9A-Za-z])*)$/;

function percentDecodeBytes(text: string): Uint8Array {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i += 1) {
    if (text[i] === "%") {
      bytes.push(Number.parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(text.charCodeAt(i));
    }
  }
  return Uint8Array.from(bytes);
}

function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * The text of an RFC 8187 ext-value. RFC 8187 3.2.1: recipients must support UTF-8
 * and ISO-8859-1; other charsets, and the language tag, are ignored.
 */
function decodeExtValue(text: string): string | undefined {
  const match = EXT_VALUE.exec(text);
  if (!match) return undefined;
  const charset = (match[1] ?? "").toLowerCase();
  const bytes = percentDecodeBytes(match[3] ?? "");
  if (charset === "utf-8") return decodeUtf8(bytes);
  if (charset === "iso-8859-1") return Buffer.from(bytes).toString("latin1");
  return undefined;
}

/**
 * Header values arrive as ISO-8859-1 code units (fetch's ByteString), yet servers
 * commonly put raw UTF-8 in a plain `filename=`; browsers read it as UTF-8 when it
 * is valid UTF-8, and so do we. A true Latin-1 name is rarely valid UTF-8.
 */
function reinterpretUtf8(text: string): string {
  if (!/[\x80-\xff]/.test(text) || /[^\x00-\xff]/.test(text)) return text;
  return decodeUtf8(Buffer.from(text, "latin1")) ?? text;
}

/**
 * The file name a Content-Disposition value gives, unsanitized. RFC 6266 4.3:
 * `filename*` (RFC 8187, any language, UTF-8 or ISO-8859-1) is preferred over
 * `filename`, which remains the fallback when `filename*` cannot be decoded.
 */
export function parseContentDisposition(value: string | null | undefined): string | undefined {
  if (value === null || value === undefined) return undefined;
  const parameters = parseDispositionParameters(value);
  if (!parameters) return undefined;
  const extended = parameters.get("filename*");
  // An ext-value is a token; a quoted one is invalid (RFC 8187 3.2.1).
  const decoded = extended && !extended.quoted ? decodeExtValue(extended.value) : undefined;
  if (decoded) return decoded;
  const plain = parameters.get("filename");
  if (!plain || plain.value === "") return undefined;
  return reinterpretUtf8(plain.value);
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
