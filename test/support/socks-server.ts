// A SOCKS5 proxy for the tests, on 127.0.0.1, written with node:net so CI needs no
// package: RFC 1928 CONNECT with "no authentication" or RFC 1929 user/password, target
// addresses as IPv4, IPv6 or a domain name. It resolves names only from its own table
// (never DNS), so a name only the proxy knows proves the client did not resolve it, and
// it connects only to loopback addresses.
import { connect, createServer, isIP, type Socket } from "node:net";
import { listenOnLoopback } from "./listen.js";

export interface SocksRequest {
  /** How the client gave the target (RFC 1928 ATYP): an address it resolved itself, or a name. */
  addressType: "ipv4" | "ipv6" | "domain";
  /** The address or name as sent. */
  host: string;
  port: number;
  /** The user name the client logged in with, when the server asked for one. */
  user: string | undefined;
}

export interface SocksServer {
  readonly port: number;
  /** `socks5h://[user:password@]127.0.0.1:<port>` (or another scheme). */
  url(options?: { scheme?: string; user?: string; password?: string }): string;
  /** Every CONNECT asked for, in order, after a successful login. */
  readonly requests: SocksRequest[];
  /** Names looked up in `hosts`, found or not. */
  readonly resolved: string[];
  /** Logins refused (wrong user or password, or none offered when one is needed). */
  authFailures(): number;
  /** TCP connections accepted. */
  connections(): number;
  close(): Promise<void>;
}

export interface SocksServerOptions {
  /** Accepted logins, user -> password; when given, the server requires one (method 2). */
  users?: Record<string, string>;
  /** The names the proxy can resolve, name -> loopback address. */
  hosts?: Record<string, string>;
}

const VERSION = 5;
const NO_AUTH = 0;
const USER_PASSWORD = 2;
const NO_ACCEPTABLE = 0xff;
const REPLY = { succeeded: 0, notAllowed: 2, hostUnreachable: 4, refused: 5, commandNotSupported: 7, addressNotSupported: 8 };

/** Starts the proxy; `close` ends it and every tunnel through it. */
export async function startSocksServer(options: SocksServerOptions = {}): Promise<SocksServer> {
  const requests: SocksRequest[] = [];
  const resolved: string[] = [];
  const sockets = new Set<Socket>();
  let authFailures = 0;
  let connections = 0;
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  };

  const server = createServer((client) => {
    connections += 1;
    track(client);
    let buffer = Buffer.alloc(0);
    let state: "greeting" | "login" | "request" | "done" = "greeting";
    let user: string | undefined;

    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      // Each step consumes a whole message or waits for more bytes.
      for (let progressed = true; progressed && state !== "done"; ) progressed = step();
    };
    const take = (length: number): Buffer => {
      const taken = buffer.subarray(0, length);
      buffer = buffer.subarray(length);
      return taken;
    };
    /** Ends the exchange with a failure reply (RFC 1928 section 6); always false: no further step. */
    const refuse = (reply: number): false => {
      client.end(Buffer.from([VERSION, reply, 0, 1, 0, 0, 0, 0, 0, 0]));
      state = "done";
      return false;
    };

    const step = (): boolean => {
      if (state === "greeting") {
        if (buffer.length < 2 || buffer.length < 2 + buffer[1]!) return false;
        const header = take(2);
        const methods = [...take(header[1]!)];
        if (header[0] !== VERSION) {
          client.destroy();
          state = "done";
          return false;
        }
        const wanted = options.users === undefined ? NO_AUTH : USER_PASSWORD;
        if (!methods.includes(wanted)) {
          authFailures += 1;
          client.end(Buffer.from([VERSION, NO_ACCEPTABLE]));
          state = "done";
          return false;
        }
        client.write(Buffer.from([VERSION, wanted]));
        state = wanted === USER_PASSWORD ? "login" : "request";
        return true;
      }
      if (state === "login") {
        // RFC 1929: VER=1 ULEN UNAME PLEN PASSWD.
        if (buffer.length < 2) return false;
        const userLength = buffer[1]!;
        if (buffer.length < 3 + userLength) return false;
        const passwordLength = buffer[2 + userLength]!;
        if (buffer.length < 3 + userLength + passwordLength) return false;
        const message = take(3 + userLength + passwordLength);
        const name = message.subarray(2, 2 + userLength).toString("utf8");
        const password = message.subarray(3 + userLength).toString("utf8");
        if (options.users?.[name] !== password) {
          authFailures += 1;
          client.end(Buffer.from([1, 1]));
          state = "done";
          return false;
        }
        user = name;
        client.write(Buffer.from([1, 0]));
        state = "request";
        return true;
      }
      // The request: VER CMD RSV ATYP DST.ADDR DST.PORT.
      if (buffer.length < 5) return false;
      const addressType = buffer[3]!;
      const addressLength = addressType === 1 ? 4 : addressType === 4 ? 16 : addressType === 3 ? 1 + buffer[4]! : -1;
      if (addressLength < 0) return refuse(REPLY.addressNotSupported);
      if (buffer.length < 4 + addressLength + 2) return false;
      const message = take(4 + addressLength + 2);
      if (message[1] !== 1) return refuse(REPLY.commandNotSupported);
      const address = message.subarray(4, 4 + addressLength);
      const port = message.readUInt16BE(4 + addressLength);
      let host: string;
      let kind: SocksRequest["addressType"];
      if (addressType === 1) {
        kind = "ipv4";
        host = [...address].join(".");
      } else if (addressType === 4) {
        kind = "ipv6";
        host = Array.from({ length: 8 }, (_, index) => address.readUInt16BE(index * 2).toString(16)).join(":");
      } else {
        kind = "domain";
        host = address.subarray(1).toString("utf8");
      }
      requests.push({ addressType: kind, host, port, user });
      state = "done";
      // Past the request, the client's bytes belong to the tunnel.
      client.off("data", onData);
      let target: string | undefined = host;
      if (kind === "domain") {
        resolved.push(host);
        target = options.hosts?.[host];
        if (target === undefined) return refuse(REPLY.hostUnreachable);
      }
      if (!isLoopback(target)) return refuse(REPLY.notAllowed);
      const upstream = connect(port, target);
      track(upstream);
      let connected = false;
      upstream.once("error", () => {
        if (!connected) refuse(REPLY.refused);
      });
      upstream.once("connect", () => {
        connected = true;
        const bound = Buffer.from([VERSION, REPLY.succeeded, 0, 1, 127, 0, 0, 1, 0, 0]);
        bound.writeUInt16BE(upstream.localPort ?? 0, 8);
        client.write(bound);
        if (buffer.length > 0) upstream.write(buffer);
        upstream.pipe(client);
        client.pipe(upstream);
        upstream.on("close", () => client.destroy());
        client.on("close", () => upstream.destroy());
      });
      return false;
    };
    client.on("data", onData);
  });
  const port = await listenOnLoopback(server);
  return {
    port,
    url: ({ scheme = "socks5h", user, password } = {}) =>
      `${scheme}://${user === undefined ? "" : `${encodeURIComponent(user)}${password === undefined ? "" : `:${encodeURIComponent(password)}`}@`}127.0.0.1:${port}`,
    requests,
    resolved,
    authFailures: () => authFailures,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

/** Only loopback targets: a test proxy must never reach out of the machine. */
function isLoopback(address: string): boolean {
  if (isIP(address) === 4) return address.startsWith("127.");
  return isIP(address) === 6 && (address === "::1" || address === "0:0:0:0:0:0:0:1");
}
