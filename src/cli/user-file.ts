/**
 * Files the user names on the command line (`-i`, `--ca`, `--config`, a netrc), read with
 * errors that say which file, what it was for and why it could not be read.
 */
import { access, constants } from "node:fs/promises";
import { dirname } from "node:path";
import { UsageError } from "../errors.js";

/**
 * Reads a file the user named (`-i`, `--ca`, `--config`, a netrc...) through `read`;
 * a failure is a `UsageError` saying which file, what for, and why in plain words.
 */
export async function readUserFile(path: string, what: string, read: (path: string) => Promise<string>): Promise<string> {
  try {
    return await read(path);
  } catch (error) {
    throw fileReadError(path, what, error);
  }
}

/** The `UsageError` for a user's file that could not be read. */
export function fileReadError(path: string, what: string, error: unknown): UsageError {
  return new UsageError(`cannot read ${what} ${path}: ${describeFileError(error)}`);
}

/** Whether reading failed only because the file is not there: a default file may be absent. */
function isMissingFile(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
}

/**
 * Whether a default file (`~/.netrc`, the config file) is out of this process's sight:
 * absent, or inside a directory it may not even look into (a process run as another
 * user with this one's HOME, as `sudo -u nobody` leaves it). A file it can see but not
 * read is still worth an error.
 */
export async function isOutOfSight(path: string, error: unknown): Promise<boolean> {
  if (isMissingFile(error) || (error as NodeJS.ErrnoException | undefined)?.code === "ENOTDIR") return true;
  if ((error as NodeJS.ErrnoException | undefined)?.code !== "EACCES") return false;
  return access(dirname(path), constants.X_OK).then(
    () => false,
    () => true,
  );
}

function describeFileError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES") return "permission denied";
  if (code === "EISDIR") return "it is a directory";
  return (error as Error).message;
}
