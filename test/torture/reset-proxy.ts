import { createServer, connect, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

/**
 * A TCP pass-through in front of the range server that can send a real RST to the
 * client: the range server can only close politely (FIN), and a reset mid-body is
 * what a crashed proxy or a load balancer timeout looks like in the wild.
 */
export interface ResetProxy {
  readonly port: number;
  url(path?: string): string;
  /** Connections accepted so far. */
  readonly connections: number;
  /** RSTs sent so far, by the policy or by `resetAll`. */
  readonly resets: number;
  /** Resets every open client connection now; returns how many. */
  resetAll(): number;
  close(): Promise<void>;
}

export interface ResetProxyOptions {
  targetPort: number;
  /**
   * Asked once per accepted connection: reset it after this many bytes from the
   * server (headers included), or never (`undefined`).
   */
  resetAfter?: () => number | undefined;
}

export async function startResetProxy(options: ResetProxyOptions): Promise<ResetProxy> {
  const open = new Set<{ client: Socket; upstream: Socket }>();
  let connections = 0;
  let resets = 0;

  const reset = (pair: { client: Socket; upstream: Socket }): void => {
    if (pair.client.destroyed) return;
    resets += 1;
    pair.client.resetAndDestroy();
    pair.upstream.destroy();
  };

  const server = createServer((client) => {
    connections += 1;
    const upstream = connect(options.targetPort, "127.0.0.1");
    const pair = { client, upstream };
    open.add(pair);
    const limit = options.resetAfter?.();
    let forwarded = 0;
    client.on("error", () => {});
    upstream.on("error", () => {});
    client.on("close", () => {
      open.delete(pair);
      upstream.destroy();
    });
    upstream.on("close", () => {
      if (!client.destroyed) client.destroySoon();
    });
    client.pipe(upstream);
    upstream.on("data", (chunk: Buffer) => {
      if (client.destroyed) return;
      if (limit !== undefined && forwarded + chunk.length >= limit) {
        const head = chunk.subarray(0, Math.max(0, limit - forwarded));
        forwarded = limit;
        upstream.pause();
        // Let the head reach the client, then reset: it sees some bytes, then ECONNRESET.
        if (head.length > 0) client.write(head, () => setImmediate(() => reset(pair)));
        else reset(pair);
        return;
      }
      forwarded += chunk.length;
      if (!client.write(chunk)) {
        upstream.pause();
        client.once("drain", () => upstream.resume());
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    port,
    url: (path = "/file.bin") => `http://127.0.0.1:${port}${path.startsWith("/") ? path : `/${path}`}`,
    get connections() {
      return connections;
    },
    get resets() {
      return resets;
    },
    resetAll() {
      let count = 0;
      for (const pair of [...open]) {
        if (!pair.client.destroyed) count += 1;
        reset(pair);
      }
      return count;
    },
    close() {
      return new Promise<void>((resolve) => {
        for (const pair of open) {
          pair.client.destroy();
          pair.upstream.destroy();
        }
        server.close(() => resolve());
      });
    },
  };
}
