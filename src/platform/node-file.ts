// Node-only file access for the engine: the browser build uses BlobByteSource instead.
import { readSync } from "node:fs";
import { open, readFile, rename, stat, unlink, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { ByteSink, ByteSource, ModelDirectory } from "../format/byte-source.ts";
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
    try {
      const stat = await handle.stat();
      if (stat.isDirectory()) throw new ModelFileError(path, "is a directory, not a model file");
      return new NodeFileSource(path, handle, stat.size);
    } catch (e) {
      await handle.close();
      throw e;
    }
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

/**
 * A file written under a temporary name next to its destination and renamed into place by
 * close(): a failed or interrupted write never leaves a half-written file under the final name.
 * abort() removes the temporary file.
 */
export class NodeFileSink implements ByteSink {
  readonly name: string;
  /** Where the bytes go until close(). */
  readonly tempPath: string;
  private readonly handle: FileHandle;
  private readonly overwrite: boolean;
  private position = 0;
  private done = false;
  private constructor(name: string, tempPath: string, handle: FileHandle, overwrite: boolean) {
    this.name = name;
    this.tempPath = tempPath;
    this.handle = handle;
    this.overwrite = overwrite;
  }
  /** Starts the file; refuses when `path` exists unless `overwrite` is set. */
  static async create(path: string, overwrite = false): Promise<NodeFileSink> {
    if (!overwrite) await refuseExisting(path);
    const tempPath = join(dirname(path), `.${basename(path)}.${process.pid}-${Math.random().toString(36).slice(2, 8)}.partial`);
    try {
      return new NodeFileSink(path, tempPath, await open(tempPath, "wx"), overwrite);
    } catch (e) {
      throw new ModelFileError(path, `cannot write here: ${describeFsError(e)}`);
    }
  }
  async write(bytes: Uint8Array): Promise<void> {
    let done = 0;
    try {
      while (done < bytes.byteLength) {
        const { bytesWritten } = await this.handle.write(bytes, done, bytes.byteLength - done, this.position);
        done += bytesWritten;
        this.position += bytesWritten;
      }
    } catch (e) {
      throw new ModelFileError(this.name, `write failed: ${describeFsError(e)}`);
    }
  }
  /** Finishes the file: flushes it and renames it to its final name. */
  async close(): Promise<void> {
    if (this.done) return;
    this.done = true;
    try {
      await this.handle.sync();
      await this.handle.close();
      if (!this.overwrite) await refuseExisting(this.name);
      await rename(this.tempPath, this.name);
    } catch (e) {
      await unlink(this.tempPath).catch(() => {});
      if (e instanceof ModelFileError) throw e;
      throw new ModelFileError(this.name, `could not finish writing: ${describeFsError(e)}`);
    }
  }
  /** Gives up: closes and deletes the temporary file; the final name is untouched. */
  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.handle.close().catch(() => {});
    await unlink(this.tempPath).catch(() => {});
  }
}

async function refuseExisting(path: string): Promise<void> {
  try {
    await stat(path);
  } catch {
    return;
  }
  throw new ModelFileError(path, "already exists; refusing to overwrite it (pass --force / overwrite: true to replace it)");
}

function describeFsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "ENOSPC") return "no space left on the device";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "ENOENT") return "the folder does not exist";
  if (code === "EROFS") return "read-only file system";
  return (e as Error).message;
}

export async function writeGGUFFile(path: string, spec: GGUFWriteSpec, opts: { overwrite?: boolean } = {}): Promise<void> {
  const sink = await NodeFileSink.create(path, opts.overwrite ?? false);
  try {
    await writeGGUF(sink, spec);
  } catch (e) {
    await sink.abort();
    throw e;
  }
}

/** A folder on disk as a ModelDirectory (file names may not leave it). */
export class NodeDirectory implements ModelDirectory {
  readonly name: string;
  constructor(path: string) {
    this.name = path;
  }
  private path(file: string): string {
    if (file.includes("..") || file.startsWith("/") || file.includes("\\")) throw new ModelFileError(this.name, `refusing to read "${file}" outside the model folder`);
    return join(this.name, file);
  }
  async readText(file: string): Promise<string | undefined> {
    try {
      return await readFile(this.path(file), "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new ModelFileError(join(this.name, file), describeFsError(e));
    }
  }
  async open(file: string): Promise<ByteSource | undefined> {
    try {
      await stat(this.path(file));
    } catch {
      return undefined;
    }
    return NodeFileSource.open(this.path(file));
  }
}
