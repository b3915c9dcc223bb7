/**
 * How many connections each host gets, learned as the run goes (DESIGN, "Retries":
 * hosts that limit connections). nginx's `limit_conn` and many object stores answer
 * `503` (often without Retry-After), `429`, or refuse the connect once a client holds
 * more than they allow, while the connections they did accept keep delivering. Such
 * a refusal is not a failure of the range: it tells us the host's limit. One instance
 * serves a whole run (a single download, or every file of `downloadAll`), so a limit
 * learned on one file holds for the next. No I/O and no clock: leases and counts only.
 */

/** Default total connections to one host across all files (DESIGN, "Command line"). */
export const DEFAULT_MAX_CONNECTIONS_PER_HOST = 16;

/**
 * The cap on connections to one host: `maxConnectionsPerHost` if given, else 16, or
 * `connections` when that is larger (one file's own `-c` is never cut by the default).
 */
export function maxConnectionsPerHostFor(options: { connections?: number; maxConnectionsPerHost?: number }): number {
  return options.maxConnectionsPerHost ?? Math.max(DEFAULT_MAX_CONNECTIONS_PER_HOST, options.connections ?? 0);
}

/** One connection's claim on a host. Release it exactly once, when the request is over. */
export interface HostLease {
  readonly host: string;
  /** The host answered this request with a success status: it is making progress. */
  answered(): void;
  release(): void;
}

/**
 * What a refusal (`429`, `503`, a refused or reset connect) means:
 * - `host-limit`: other connections to the host are delivering, so the host allows
 *   fewer; its limit is now `limit`. Give the range back; the attempt does not count.
 * - `failure`: nothing else is getting through; an ordinary failed attempt.
 */
export type RefusalOutcome = { kind: "host-limit"; limit: number } | { kind: "failure" };

interface HostState {
  limit: number;
  leases: Set<Lease>;
  peak: number;
  waiting: Array<() => void>;
}

interface Lease extends HostLease {
  delivering: boolean;
  released: boolean;
}

export class HostLimits {
  readonly #max: number;
  readonly #hosts = new Map<string, HostState>();

  /** @param maxPerHost the total cap per host, at least 1 (see `maxConnectionsPerHostFor`). */
  constructor(maxPerHost: number) {
    if (!Number.isSafeInteger(maxPerHost) || maxPerHost < 1) {
      throw new RangeError(`maxConnectionsPerHost must be a whole number of at least 1, not ${maxPerHost}`);
    }
    this.#max = maxPerHost;
  }

  /** A lease on `host` if it has a free connection, else `undefined`. */
  tryAcquire(host: string): HostLease | undefined {
    const state = this.#state(host);
    if (state.leases.size >= state.limit) return undefined;
    const lease: Lease = {
      host,
      delivering: false,
      released: false,
      answered: () => {
        lease.delivering = true;
      },
      release: () => {
        if (lease.released) return;
        lease.released = true;
        state.leases.delete(lease);
        state.waiting.shift()?.();
      },
    };
    state.leases.add(lease);
    state.peak = Math.max(state.peak, state.leases.size);
    return lease;
  }

  /** Waits for a lease on `host` (first come, first served); rejects with the signal's reason on abort. */
  async acquire(host: string, signal: AbortSignal): Promise<HostLease> {
    for (;;) {
      signal.throwIfAborted();
      const lease = this.tryAcquire(host);
      if (lease) return lease;
      await new Promise<void>((resolve, reject) => {
        const state = this.#state(host);
        const wake = () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
        const onAbort = () => {
          state.waiting = state.waiting.filter((waiter) => waiter !== wake);
          reject(signal.reason);
        };
        state.waiting.push(wake);
        signal.addEventListener("abort", onAbort, { once: true });
      });
    }
  }

  /**
   * `lease`'s request was refused by its host. If another connection to the host is
   * delivering, the host's limit drops to the connections still held besides this
   * one (never below 1, never raised again in this run): each further refusal lowers
   * it by one more, down to what the host really serves. The caller still releases
   * `lease`.
   */
  refused(lease: HostLease): RefusalOutcome {
    const state = this.#state(lease.host);
    const others = [...state.leases].filter((other) => other !== lease);
    if (!others.some((other) => other.delivering)) return { kind: "failure" };
    state.limit = Math.max(1, Math.min(state.limit, others.length));
    return { kind: "host-limit", limit: state.limit };
  }

  /** Connections `host` may have at once now. */
  limit(host: string): number {
    return this.#hosts.get(host)?.limit ?? this.#max;
  }

  /** Connections to `host` held now. */
  inUse(host: string): number {
    return this.#hosts.get(host)?.leases.size ?? 0;
  }

  /** The most connections to `host` held at once in this run. */
  peak(host: string): number {
    return this.#hosts.get(host)?.peak ?? 0;
  }

  #state(host: string): HostState {
    let state = this.#hosts.get(host);
    if (!state) {
      state = { limit: this.#max, leases: new Set(), peak: 0, waiting: [] };
      this.#hosts.set(host, state);
    }
    return state;
  }
}

// Kept importable from here for the modules that take it from host-limits.js (worker.ts).

/** The key connections are counted by: host and port, as a server's limit applies to one listener. */
export function hostKey(url: string): string {
  return new URL(url).host;
}
