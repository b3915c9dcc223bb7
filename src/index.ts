/**
 * The library's public surface: `download`, `downloadStream`, `downloadAll`, the error
 * classes and the public types. Importing it checks the Node version first
 * (node-version.ts), so an old Node fails with one line, not a syntax error.
 */
import "./node-version.js";
export { download, downloadStream } from "./download.js";
export { downloadAll } from "./batch.js";
export {
  AbortError,
  FileError,
  HttpStatusError,
  IntegrityError,
  NetworkError,
  RangegetError,
  RemoteChangedError,
  UsageError,
  exitCodeForErrorCode,
} from "./errors.js";
export type { ErrorCode, ErrorSummary } from "./errors.js";
export type {
  Checksum,
  DownloadAllOptions,
  DownloadItem,
  DownloadOptions,
  DownloadResult,
  FinishedDownload,
  DownloadStream,
  DownloadStreamOptions,
  HttpStats,
  ProgressEvent,
} from "./types.js";
export type { CredentialSource } from "./credentials.js";
export { EVENT_SCHEMA_VERSION } from "./types.js";
export type { DownloadEvent, EventBase, EventRange, TraceEvent } from "./types.js";
