/**
 * netrc files (`--netrc`, `--netrc-file`, `~/.netrc`): parsed as curl and ftp read them
 * (machine, default, login, password, macdef skipped), offered to the request path as a
 * credential source per host, and the permission warning where modes mean something.
 */
import { UsageError } from "./errors.js";
import type { CredentialSource } from "./credentials.js";

/** A login for one host (or for any host, as `default`). */
export interface NetrcLogin {
  login: string;
  /** Empty when the entry names no password. */
  password: string;
}

/** A parsed netrc: entries in file order, and the `default` entry if any. */
export interface Netrc {
  machines: Array<NetrcLogin & { machine: string }>;
  default: NetrcLogin | undefined;
}

interface Token {
  text: string;
  line: number;
}

/**
 * Parses a netrc (the format of BSD ftp(1), read by curl, wget and git): whitespace-
 * separated tokens, `machine <host>` or `default` starting an entry, then `login`,
 * `password`, `account`; `macdef <name>` followed by a macro body that runs up to the
 * next blank line; `#` starting a comment to the end of the line; tokens in double
 * quotes may hold spaces and `\"`, `\\` escapes (as curl 7.84+ reads them).
 *
 * Keywords of other tools (git's `port`, `protocol`, `path`) are taken as key-value
 * pairs and skipped, so one file serves them all. Throws `UsageError` naming `source`
 * and the line for a keyword outside an entry or a keyword without its value.
 */
export function parseNetrc(text: string, source: string): Netrc {
  const netrc: Netrc = { machines: [], default: undefined };
  let current: { machine: string | undefined; login: string | undefined; password: string } | undefined;
  const finish = (): void => {
    if (current?.login === undefined) return;
    const login = { login: current.login, password: current.password };
    if (current.machine === undefined) netrc.default ??= login;
    else netrc.machines.push({ machine: current.machine, ...login });
  };
  const tokens = tokenize(text, source);
  for (let token = tokens.next(); token !== undefined; token = tokens.next()) {
    const value = (): string => {
      const next = tokens.next();
      if (next === undefined) throw new UsageError(`netrc ${source} line ${token!.line}: "${token!.text}" needs a value`);
      return next.text;
    };
    switch (token.text) {
      case "machine":
        finish();
        current = { machine: value().toLowerCase(), login: undefined, password: "" };
        break;
      case "default":
        finish();
        current = { machine: undefined, login: undefined, password: "" };
        break;
      case "macdef":
        value();
        tokens.skipMacroBody();
        break;
      default: {
        if (current === undefined) {
          throw new UsageError(`netrc ${source} line ${token.line}: expected "machine" or "default", found "${redactKeyword(token.text)}"`);
        }
        const keyword = token.text;
        const text = value();
        if (keyword === "login") current.login = text;
        else if (keyword === "password") current.password = text;
      }
    }
  }
  finish();
  return netrc;
}

/** A token where a keyword belongs may be a stray password: show only that something is there. */
function redactKeyword(text: string): string {
  return /^[a-z]+$/.test(text) ? text : "…";
}

function tokenize(text: string, source: string) {
  let position = 0;
  let line = 1;
  const advance = (): string => {
    const char = text[position++]!;
    if (char === "\n") line++;
    return char;
  };
  return {
    next(): Token | undefined {
      for (;;) {
        while (position < text.length && /\s/.test(text[position]!)) advance();
        if (position >= text.length) return undefined;
        if (text[position] !== "#") break;
        while (position < text.length && text[position] !== "\n") advance();
      }
      const startLine = line;
      let token = "";
      if (text[position] === '"') {
        advance();
        for (;;) {
          if (position >= text.length) throw new UsageError(`netrc ${source} line ${startLine}: a quoted token has no closing quote`);
          const char = advance();
          if (char === '"') break;
          if (char === "\\" && position < text.length) token += advance();
          else token += char;
        }
      } else {
        while (position < text.length && !/\s/.test(text[position]!)) token += advance();
      }
      return { text: token, line: startLine };
    },
    /** ftp(1): a macro body is the lines after `macdef <name>`, up to a blank line. */
    skipMacroBody(): void {
      while (position < text.length && text[position] !== "\n") advance();
      while (position < text.length) {
        advance();
        const lineEnd = text.indexOf("\n", position);
        const body = text.slice(position, lineEnd === -1 ? text.length : lineEnd);
        if (body.trim() === "") return;
        while (position < text.length && text[position] !== "\n") advance();
      }
    },
  };
}

/**
 * The login for `hostname`: the first `machine` entry naming it (case-insensitive, as
 * host names are), else `default`. IPv6 literals match with or without brackets.
 */
export function netrcLoginFor(netrc: Netrc, hostname: string): NetrcLogin | undefined {
  const host = hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  const entry = netrc.machines.find((machine) => machine.machine.replace(/^\[(.*)\]$/, "$1") === host);
  return entry === undefined ? netrc.default : { login: entry.login, password: entry.password };
}

/**
 * Basic auth (RFC 7617) from a netrc, to each request's own host only: the lookup is
 * per request URL, so a redirect to another host gets that host's entry or nothing.
 * A URL with its own user name gets nothing: URL credentials win (the caller sends them).
 */
export function netrcCredentials(netrc: Netrc): CredentialSource {
  return {
    headersFor(url): Record<string, string> {
      if (url.username !== "") return {};
      const login = netrcLoginFor(netrc, url.hostname);
      if (login === undefined) return {};
      return { authorization: `Basic ${Buffer.from(`${login.login}:${login.password}`, "utf8").toString("base64")}` };
    },
    onResponse() {},
  };
}

/**
 * The warning for a netrc that group or others can read or write (ftp(1) refuses such
 * a file; we warn and still use it), or `undefined`. `mode` is the file's `stat` mode.
 */
export function netrcPermissionWarning(path: string, mode: number): string | undefined {
  if ((mode & 0o077) === 0) return undefined;
  return `netrc ${path} is open to other users (mode ${(mode & 0o777).toString(8).padStart(4, "0")}); run chmod 600 ${path}`;
}
