// Node-only file access for the engine: the browser build uses BlobByteSource instead.
import { readSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import type { ByteSink, ByteSource } from "../format/byte-source.ts";
import { ModelFileError } from "../format/errors.ts";
import { readGGUF, type GGUFFile } from "../format/gguf-reader.ts";
import { writeGGUF, type GGUFWriteSpec } from "../format/gguf-writer.ts";

export class NodeFileSource implements ByteSource {
  readonly name: string;
  readonly size: number;
  private readonly handle: FileHandle;
  private constructor(name: string, handle: FileHandle, size: number) {
    this.name = name;
    this.handle = handle;
    this.size = size;
  }
  static async open(path: string): Promise<NodeFileSource> {
    let handle: FileHandle;
    try {
      handle = await open(path, "r");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "is a directory, not a model file" : (e as Error).message;
      throw new ModelFileError(path, why);
    }
    const stat = await handle.stat();
    if (stat.isDirectory()) {
      await handle.close();
      throw new ModelFileError(path, "is a directory, not a model file");
    }
    return new NodeFileSource(path, handle, stat.size);
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      // A single read is capped at 2 GiB by Node; loop in chunks.
      const n = Math.min(length - done, 1 << 30);
      const { bytesRead } = await this.handle.read(out, done, n, offset + done);
      if (bytesRead === 0) throw new ModelFileError(this.name, `unexpected end of file at byte ${offset + done}`);
      done += bytesRead;
    }
    return out;
  }
  readSync(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.handle.fd, out, done, length - done, offset + done);
      if (n === 0) throw new ModelFileError(this.name, `unexpected end of file at byte ${offset + done}`);
      done += n;
    }
    return out;
  }
  async close(): Promise<void> {
    await this.handle.close();
  }
}

export async function openGGUFFile(path: string): Promise<GGUFFile> {
  const source = await NodeFileSource.open(path);
  try {
    return await readGGUF(source);
  } catch (e) {
    await source.close();
    throw e;
  }
}

export class NodeFileSink implements ByteSink {
  readonly name: string;
  private readonly handle: FileHandle;
  private position = 0;
  private constructor(name: string, handle: FileHandle) {
    this.name = name;
    this.handle = handle;
  }
  /** Creates the file; refuses to replace an existing one unless `overwrite` is set. */
  static async create(path: string, overwrite = false): Promise<NodeFileSink> {
    try {
      return new NodeFileSink(path, await open(path, overwrite ? "w" : "wx"));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") {
        throw new ModelFileError(path, "already exists; refusing to overwrite it (pass --force / overwrite: true to replace it)");
      }
      throw new ModelFileError(path, (e as Error).message);
    }
  }
  async write(bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.byteLength) {
      const { bytesWritten } = await this.handle.write(bytes, done, bytes.byteLength - done, this.position);
      done += bytesWritten;
      this.position += bytesWritten;
    }
  }
  async close(): Promise<void> {
    await this.handle.close();
  }
}

export async function writeGGUFFile(path: string, spec: GGUFWriteSpec, opts: { overwrite?: boolean } = {}): Promise<void> {
  const sink = await NodeFileSink.create(path, opts.overwrite ?? false);
  try {
    await writeGGUF(sink, spec);
  } catch (e) {
    await sink.close().catch(() => {});
    throw e;
  }
}
