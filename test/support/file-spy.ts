// A real FileHandle whose writev calls are observed (and, when a test asks, replaced).
import type { FileHandle } from "node:fs/promises";

export type Writev = (buffers: Buffer[], position: number) => Promise<{ bytesWritten: number; buffers: Buffer[] }>;

export interface WritevCall {
  position: number;
  bytes: number;
  buffers: number;
}

/**
 * A real FileHandle whose writev is observed and, optionally, replaced. Everything
 * else goes to the real handle.
 */
export function spyOn(handle: FileHandle, replace?: (real: Writev, buffers: Buffer[], position: number) => ReturnType<Writev>) {
  const calls: WritevCall[] = [];
  const real: Writev = (buffers, position) => handle.writev(buffers, position);
  const spy = new Proxy(handle, {
    get(target, property) {
      if (property === "writev") {
        return (buffers: Buffer[], position: number) => {
          calls.push({ position, bytes: buffers.reduce((sum, b) => sum + b.length, 0), buffers: buffers.length });
          return replace ? replace(real, buffers, position) : real(buffers, position);
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { file: spy, calls };
}

