import { UsageError } from "../errors.js";
import { redactText } from "../redact.js";

/**
 * Checks that `text` is an absolute http or https URL, so a typo fails with exit 2
 * before any connection is made instead of as a network error later.
 */
export function parseHttpUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`"${redactText(text)}" is not a URL; give an absolute http:// or https:// URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`"${redactText(text)}" is not an http or https URL (rangeget speaks HTTP only)`);
  }
  return url;
}
