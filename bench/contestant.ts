// One contestant of a side-by-side benchmark in its own Node process (bench/runner.ts): its own
// memory high-water mark, no shared heap or thread pool with the others. Driven over IPC.
import { fork, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { RunnerReply, RunnerRequest } from "./runner.ts";

const here = fileURLToPath(new URL(".", import.meta.url));

export class Contestant {
  readonly name: string;
  private child: ChildProcess;
  private nextId = 1;
  private pending = new Map<number, { res: (v: unknown) => void; rej: (e: Error) => void }>();
  readonly ready: Promise<unknown>;
  constructor(name: string) {
    this.name = name;
    this.child = fork(join(here, "runner.ts"), [name], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.ready = new Promise((res, rej) => this.pending.set(0, { res, rej }));
    this.child.on("message", (m: RunnerReply) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.ok) p?.res(m.value);
      else p?.rej(new Error(`${this.name}: ${m.error}`));
    });
    this.child.on("exit", (code) => {
      for (const p of this.pending.values()) p.rej(new Error(`${this.name}: runner exited (code ${code})`));
      this.pending.clear();
    });
  }
  request<T>(m: RunnerRequest extends infer R ? (R extends { id: number } ? Omit<R, "id"> : never) : never): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((res, rej) => {
      this.pending.set(id, { res: res as (v: unknown) => void, rej });
      this.child.send({ ...m, id });
    });
  }
  async close(): Promise<void> {
    await this.request({ cmd: "exit" }).catch(() => {});
    if (this.child.exitCode === null) this.child.kill();
  }
}
