/**
 * The copies of one file a download fetches from (the URL and its mirrors): which copy
 * a connection uses, dropping a mirror that fails for good, and asking the URL that
 * was given again when the signed URL it redirected to has expired.
 */
import { HttpStatusError } from "./errors.js";
import { shownUrl, type HttpResponse, type RequestContext } from "./http.js";
import { probe } from "./probe.js";
import { serverFault } from "./to-error.js";
import { bodyPlacement } from "./verdict.js";

/** One copy of the file: the URL itself or a mirror. */
export interface Source {
  /** Where ranges are asked for (after redirects). */
  url: string;
  /** The URL as given (the user's, or the mirror's): asked again for a fresh redirect when a signed URL expires. */
  requestedUrl: string;
  origin: string;
  etag: string | null;
  lastModified: string | null;
  /** This copy's own validator: mirrors rarely share ETags. */
  ifRange: string | undefined;
  /** The URL the user gave; a change there restarts the download, a mirror's only drops the mirror. */
  primary: boolean;
  failed: boolean;
}

/** An answer already under way (the probe's, a refreshed signed URL's), placed by its verdict. */
export interface GivenBody {
  response: HttpResponse;
  /** Body bytes before the first byte of the range. */
  skip: number;
  /** The last byte (inclusive) the answer proves; it may stop short of the range's end. */
  end: number;
}

/** The worker's own copy if it still works, else the first that does. */
export function pickSource(sources: readonly Source[], preferred: number): Source {
  const own = sources[preferred % sources.length];
  if (own && !own.failed) return own;
  const working = sources.find((source) => !source.failed);
  if (!working) throw new Error("internal error: no working source left");
  return working;
}

/**
 * A copy that fails for good (`why`: a sentence) is dropped while another works, with a
 * warning, and its ranges go to the other copies; `false` when it is the last working
 * one, whose failure is the download's. Whether a failure may cost a copy rather than
 * the download (a mirror's change may; the URL's may not) is the caller's to decide.
 */
export function dropMirror(
  copies: { sources: readonly Source[]; http: RequestContext; warn: (message: string) => void },
  source: Source,
  why: string,
): boolean {
  const { sources, warn } = copies;
  const others = sources.filter((other) => other !== source && !other.failed);
  if (others.length === 0) return false;
  source.failed = true;
  warn(`dropping ${shownUrl(copies.http, source.url)}: ${why}; continuing with the other ${others.length === 1 ? "copy" : "copies"}`);
  return true;
}

/** The sentence for a copy whose file changed under the download (`what`: the verdict's reason). */
export function changedDuringDownload(shown: string, what: string): string {
  return `the remote file at ${shown} changed during the download: ${what}`;
}

/** What a refresh needs of the transfer: its requests' context and the file's size. */
export interface RefreshContext {
  http: RequestContext;
  size: number;
}

/**
 * A `401`/`403`/`404`/`410` from a URL reached through a redirect (not the one given):
 * a signed URL that expired (S3, CDNs), not a refusal of the file (DESIGN, "Resume").
 */
export function signedUrlExpired(source: Source, error: unknown): boolean {
  if (!(error instanceof HttpStatusError) || source.url === source.requestedUrl) return false;
  return error.status === 401 || error.status === 403 || error.status === 404 || error.status === 410;
}

/**
 * Asks the URL that was given again, for a fresh redirect, for the rest of the range.
 * Its answer must be the same version (If-Range, validators): then the source moves
 * to the new URL and the bytes on disk are kept. One attempt: the refresh runs inside
 * the range's retry loop, whose budget it shares (one budget per need; with its own
 * loop, `--retries 3` once meant ten GETs of the user's URL). Resolves with the fresh
 * answer's body, or with `changed` when the fresh redirect leads to another version.
 * @throws HttpStatusError (the fresh URL refuses too), IntegrityError ERR_BAD_RANGE, NetworkError
 */
export async function refreshSource(
  context: RefreshContext,
  source: Source,
  range: { start: number; end: number },
  signal: AbortSignal,
): Promise<GivenBody | { kind: "changed"; reason: string }> {
  const answer = await probe(
    context.http,
    {
      url: source.requestedUrl,
      range,
      ifRange: source.ifRange,
      known: { size: context.size, etag: source.etag, lastModified: source.lastModified, bytesDone: 0 },
      retries: 1,
      first: false,
    },
    signal,
  );
  const { verdict } = answer;
  const shown = shownUrl(context.http, source.requestedUrl);
  if (verdict.kind === "changed") {
    answer.response.body.destroy();
    return { kind: "changed", reason: changedDuringDownload(shown, verdict.reason) };
  }
  const placement = bodyPlacement(verdict, answer.asked);
  if (verdict.kind !== "bytes" || placement === undefined || placement.start !== range.start) {
    answer.response.body.destroy();
    throw serverFault(shown, `its fresh redirect answered bytes ${range.start}-${range.end} with ${answer.response.status} (${verdict.kind})`);
  }
  source.url = answer.finalUrl;
  source.origin = new URL(answer.finalUrl).origin;
  return { response: answer.response, skip: placement.skip, end: placement.end };
}

