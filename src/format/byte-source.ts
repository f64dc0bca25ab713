/**
 * Random-access bytes of a model file. The engine core reads files only through this, so the
 * same parser runs on a Node file handle, a browser File/Blob, or bytes already in memory.
 */
export interface ByteSource {
  /** Shown in error messages: a file path or a URL. */
  readonly name: string;
  readonly size: number;
  /** Reads exactly `length` bytes at `offset` (the caller has checked the range). */
  read(offset: number, length: number): Promise<Uint8Array>;
  /**
   * The same, synchronously, where the platform allows it (Node files, memory). Used for small
   * reads in the middle of a forward pass, such as embedding rows, so they need not stay resident.
   */
  readSync?(offset: number, length: number): Uint8Array;
  close(): Promise<void>;
}

/** A ByteSource over bytes already in memory (tests, browsers with an ArrayBuffer). */
export class MemoryByteSource implements ByteSource {
  readonly name: string;
  readonly size: number;
  private readonly bytes: Uint8Array;
  constructor(bytes: Uint8Array, name = "<memory>") {
    this.bytes = bytes;
    this.name = name;
    this.size = bytes.byteLength;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    return this.bytes.subarray(offset, offset + length);
  }
  readSync(offset: number, length: number): Uint8Array {
    return this.bytes.subarray(offset, offset + length);
  }
  async close(): Promise<void> {}
}

/** A ByteSource over a browser Blob/File (sliced lazily, never loaded whole). */
export class BlobByteSource implements ByteSource {
  readonly name: string;
  readonly size: number;
  private readonly blob: Blob;
  constructor(blob: Blob, name = (blob as { name?: string }).name ?? "<blob>") {
    this.blob = blob;
    this.name = name;
    this.size = blob.size;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    return new Uint8Array(await this.blob.slice(offset, offset + length).arrayBuffer());
  }
  async close(): Promise<void> {}
}

/** Where a writer sends bytes, in order. */
export interface ByteSink {
  readonly name: string;
  write(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export class MemoryByteSink implements ByteSink {
  readonly name = "<memory>";
  private chunks: Uint8Array[] = [];
  private length = 0;
  async write(bytes: Uint8Array): Promise<void> {
    this.chunks.push(bytes.slice());
    this.length += bytes.byteLength;
  }
  async close(): Promise<void> {}
  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.byteLength;
    }
    return out;
  }
}

/** A folder of model files (a Hugging Face checkpoint): files by their name relative to it. */
export interface ModelDirectory {
  /** Shown in error messages: the folder's path. */
  readonly name: string;
  /** A text file's contents, or undefined when the folder has no such file. */
  readText(file: string): Promise<string | undefined>;
  /** A file's bytes, or undefined when the folder has no such file. The caller closes it. */
  open(file: string): Promise<ByteSource | undefined>;
}
