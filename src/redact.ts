/**
 * No password is ever shown: every URL that rangeget prints or stores (stderr, `--json`,
 * progress, warnings, error messages) goes through here first, and shows its
 * credentials as `user:***@` (DESIGN, "Command line": Credentials).
 */

/**
 * `scheme://user:password@` anywhere in a text. The password ends at the first `@`,
 * `/`, `?`, `#` or white space: a WHATWG URL percent-encodes those inside userinfo
 * (`p%40ss`), so a serialised URL never has them raw there.
 */
const USERINFO_WITH_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/?#@:]*):([^\s/?#@]*)@/gi;

/**
 * `url` with its password replaced by `***`; a user name alone is kept (DESIGN shows
 * `user:***@`). Text that is not a URL is redacted the same way as `redactText`.
 */
export function redactUrl(url: string): string {
  if (!URL.canParse(url)) return redactText(url);
  const parsed = new URL(url);
  if (parsed.password === "") return url;
  // Through the URL API, not a pattern: a password typed with a raw `@` ends at the
  // last `@` before the host, which only a URL parser knows.
  parsed.password = "***";
  return parsed.href;
}

/** Every `scheme://user:password@` in `text` (a message, a JSON line) as `scheme://user:***@`. */
export function redactText(text: string): string {
  return text.replace(USERINFO_WITH_PASSWORD, (_match, scheme: string, user: string, password: string) =>
    password === "" ? `${scheme}${user}:@` : `${scheme}${user}:***@`,
  );
}

/** `url` without any user name or password: what the manifest and the origin record keep. */
export function withoutCredentials(url: string): string {
  if (!URL.canParse(url)) return url;
  const parsed = new URL(url);
  if (parsed.username === "" && parsed.password === "") return url;
  parsed.username = "";
  parsed.password = "";
  return parsed.href;
}
