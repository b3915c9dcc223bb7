/**
 * The origin record kept with a finished output (DESIGN, "Files on disk"): where it came
 * from, its validators and size, so that running the same command again recognises a
 * file rangeget finished from the same URL and leaves it alone (`up-to-date`).
 *
 * It is stored as extended attributes, as curl and wget `--xattr` do
 * (`user.xdg.origin.url`, freedesktop.org's "Common Extended Attributes"), plus
 * `user.rangeget.origin` holding the validators and size as JSON. Node has no xattr
 * API; `@napi-rs/xattr` ships prebuilt N-API binaries (no compiler at install time, one
 * binary for every Node version). Where it has no binary, or the file system refuses
 * user attributes (FAT, some network file systems, tmpfs without user_xattr), the same
 * record goes to a sidecar `<output>.origin.json`.
 */
import { readFile, stat, writeFile } from "node:fs/promises";
import { removeIfPresent } from "./manifest.js";
import { withoutCredentials } from "./redact.js";

/** What a finished output is: the URL (without credentials), its version and size. */
export interface OriginRecord {
  url: string;
  etag: string | null;
  lastModified: string | null;
  /** Bytes. */
  size: number;
}

const URL_ATTRIBUTE = "user.xdg.origin.url";
const RECORD_ATTRIBUTE = "user.rangeget.origin";

/** The extended-attribute calls this module needs (`@napi-rs/xattr`'s, or a test's). */
export interface XattrApi {
  setAttribute(path: string, name: string, value: string): Promise<void>;
  getAttribute(path: string, name: string): Promise<Buffer | null>;
}

/** Where the record went: extended attributes, or the sidecar file. */
export type RecordedIn = "xattr" | "sidecar";

/** The sidecar used where extended attributes are not available. */
export function originSidecar(path: string): string {
  return `${path}.origin.json`;
}

/** `@napi-rs/xattr`, or `undefined` on a platform it has no binary for. */
export async function loadXattr(): Promise<XattrApi | undefined> {
  try {
    return await import("@napi-rs/xattr");
  } catch {
    return undefined;
  }
}

/**
 * Writes the record for `path`. Call it on the `.part` before the rename into place:
 * extended attributes move with the file, so the output never appears without its
 * record. `sidecarFor` names the output the sidecar belongs to (the final name).
 * Rejects only when neither attributes nor the sidecar could be written.
 */
export async function writeOriginRecord(
  path: string,
  record: OriginRecord,
  options: { xattr: XattrApi | undefined; sidecarFor: string },
): Promise<RecordedIn> {
  const clean: OriginRecord = { ...record, url: withoutCredentials(record.url) };
  const details = JSON.stringify({ etag: clean.etag, lastModified: clean.lastModified, size: clean.size });
  if (options.xattr) {
    try {
      await options.xattr.setAttribute(path, URL_ATTRIBUTE, clean.url);
      await options.xattr.setAttribute(path, RECORD_ATTRIBUTE, details);
      // A sidecar from an earlier run on a file system without attributes would disagree.
      await removeIfPresent(originSidecar(options.sidecarFor));
      return "xattr";
    } catch {
      // ENOTSUP, EPERM on this file system: the sidecar holds the same facts.
    }
  }
  await writeFile(originSidecar(options.sidecarFor), `${JSON.stringify(clean)}\n`);
  return "sidecar";
}

/** The record kept with `path`, from its attributes or else its sidecar; `undefined` if none is readable. */
export async function readOriginRecord(path: string, xattr: XattrApi | undefined): Promise<OriginRecord | undefined> {
  if (xattr) {
    try {
      const url = await xattr.getAttribute(path, URL_ATTRIBUTE);
      const details = await xattr.getAttribute(path, RECORD_ATTRIBUTE);
      if (url !== null && details !== null) {
        const parsed = parseRecord({ url: url.toString("utf8"), ...(JSON.parse(details.toString("utf8")) as object) });
        if (parsed) return parsed;
      }
    } catch {
      // No attributes here: try the sidecar.
    }
  }
  try {
    return parseRecord(JSON.parse(await readFile(originSidecar(path), "utf8")));
  } catch {
    return undefined;
  }
}

/** Anything but the exact shape is no record: a guess would skip a file that needs fetching. */
export function parseRecord(value: unknown): OriginRecord | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const record = value as Record<string, unknown>;
  const { url, etag, lastModified, size } = record;
  if (typeof url !== "string" || !URL.canParse(url)) return undefined;
  if (etag !== null && typeof etag !== "string") return undefined;
  if (lastModified !== null && typeof lastModified !== "string") return undefined;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) return undefined;
  return { url, etag, lastModified, size };
}

/**
 * Whether `path` is a file rangeget finished from `url`: its record names the same URL
 * (credentials aside) and its size is still the recorded one (a file cut or appended
 * to since is not the one we finished).
 */
export async function finishedFrom(path: string, url: string, xattr: XattrApi | undefined): Promise<OriginRecord | undefined> {
  const record = await readOriginRecord(path, xattr);
  if (!record || record.url !== withoutCredentials(url)) return undefined;
  const actual = await stat(path).catch(() => undefined);
  return actual?.isFile() && actual.size === record.size ? record : undefined;
}
