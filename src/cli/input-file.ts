/**
 * `-i FILE` lists: one download per line (its URL, other copies of the same file after it,
 * then an optional output name), whole-line comments and blank lines skipped, each bad
 * line named by its number.
 */
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
 * An output is a name or a relative path without `..`: nothing in a list reaches
 * outside the directory.
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
    // A line that does not start with a URL is not a line of URLs, whatever follows.
    checkUrl(url, source, line);
    if (extra.length > 0) {
      throw new UsageError(
        `${source} line ${line}: expected "<url>[<TAB>mirror...] [output]" but found ${extra.length} more field${extra.length === 1 ? "" : "s"} after the output; output names cannot contain spaces`,
      );
    }
    for (const candidate of urls) checkUrl(candidate, source, line);
    if (output !== undefined) checkOutput(output, source, line);
    entries.push(output === undefined ? { url, mirrors, line } : { url, mirrors, output, line });
  });
  return entries;
}

function checkUrl(candidate: string, source: string, line: number): void {
  try {
    parseHttpUrl(candidate);
  } catch (error) {
    throw new UsageError(`${source} line ${line}: ${(error as Error).message}`);
  }
}

/**
 * A list's output stays inside the directory (`-d`, else the current one): a list may
 * come from elsewhere, and `../../etc/passwd` or `/etc/passwd` in it must not reach
 * outside. Both separators count, as a list may be written on Windows.
 * @throws UsageError naming the line
 */
function checkOutput(output: string, source: string, line: number): void {
  const absolute = /^([/\\]|[a-z]:)/i.test(output);
  const upward = output.split(/[/\\]/).includes("..");
  if (absolute || upward) {
    throw new UsageError(
      `${source} line ${line}: the output "${output}" ${absolute ? "is an absolute path" : 'climbs out with ".."'}; outputs in a list are names or paths inside the directory (-d)`,
    );
  }
}
