import { UsageError } from "../errors.js";
import { parseHttpUrl } from "../options.js";

/** One download named by a line of an `-i` file. */
export interface InputFileEntry {
  url: string;
  /** Other copies of the same file, tab-separated after the URL (as in aria2's lists). */
  mirrors: string[];
  output?: string;
  /** 1-based line number, for error messages. */
  line: number;
}

/**
 * Parses an `-i` file: one `<url>[<TAB>mirror...] [output]` per line, `#` starts a
 * comment line, blank lines are skipped. `source` names the file in error messages
 * (`-` reads as "stdin").
 *
 * Only whole-line comments: a `#` later in a line is a URL fragment, not a comment.
 * Output names with spaces are refused rather than guessed at: a field after the
 * output is more likely a typo than part of a name.
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
    // Leading fields that are URLs are copies of one file (tab-separated, as in
    // aria2's lists); an output name never looks like one.
    const copies = fields.findIndex((field) => !/^[a-z][a-z0-9+.-]*:\/\//i.test(field));
    const urls = copies === -1 ? fields : fields.slice(0, Math.max(copies, 1));
    const [output, ...extra] = fields.slice(urls.length);
    const [url, ...mirrors] = urls;
    if (url === undefined) return;
    if (extra.length > 0) {
      throw new UsageError(
        `${source} line ${line}: expected "<url>[<TAB>mirror...] [output]" but found ${extra.length} more field${extra.length === 1 ? "" : "s"} after the output; output names cannot contain spaces`,
      );
    }
    for (const candidate of urls) {
      try {
        parseHttpUrl(candidate);
      } catch (error) {
        throw new UsageError(`${source} line ${line}: ${(error as Error).message}`);
      }
    }
    entries.push(output === undefined ? { url, mirrors, line } : { url, mirrors, output, line });
  });
  return entries;
}
