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
export function isMissingFile(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
}

function describeFileError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES") return "permission denied";
  if (code === "EISDIR") return "it is a directory";
  return (error as Error).message;
}
