import { UsageError } from "../errors.js";
import { parseHttpUrl } from "./url.js";

/** One download named by a line of an `-i` file. */
export interface InputFileEntry {
  url: string;
  output?: string;
  /** 1-based line number, for error messages. */
  line: number;
}

/**
 * Parses an `-i` file: one `<url> [output]` per line, `#` starts a comment line, blank
 * lines are skipped. `source` names the file in error messages (`-` reads as "stdin").
 *
 * Only whole-line comments: a `#` later in a line is a URL fragment, not a comment.
 * Output names with spaces are refused rather than guessed at, because a third field
 * is more likely a typo (or an aria2-style mirror list) than part of a name.
 */
export function parseInputFile(text: string, source = "input file"): InputFileEntry[] {
  const entries: InputFileEntry[] = [];
  // A UTF-8 BOM (Windows editors) would otherwise become part of the first URL.
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  lines.forEach((rawLine, index) => {
    const line = index + 1;
    const trimmed = rawLine.trim();
    if (trimmed === "" || trimmed.startsWith("#")) return;
    const fields = trimmed.split(/\s+/);
    const [url, output, ...extra] = fields;
    if (url === undefined) return;
    if (extra.length > 0) {
      throw new UsageError(
        `${source} line ${line}: expected "<url> [output]" but found ${fields.length} fields; output names cannot contain spaces`,
      );
    }
    try {
      parseHttpUrl(url);
    } catch (error) {
      throw new UsageError(`${source} line ${line}: ${(error as Error).message}`);
    }
    entries.push(output === undefined ? { url, line } : { url, output, line });
  });
  return entries;
}
