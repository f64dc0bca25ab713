// A Hugging Face hub imitation on loopback for the pull tests: the tree API (paged, sizes and LFS
// sha256), resolve URLs that redirect with a 302 to a "CDN" on another host name (localhost vs
// 127.0.0.1), Range requests (206 / 416), and the failures a real download meets: a connection cut
// mid-file, a server that ignores Range, a wrong sha256, a gated repository (401 without a token).
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeFile {
  readonly path: string;
  readonly bytes: Uint8Array;
  /** The sha256 the listing claims (default: the real one). */
  readonly listedSha256?: string;
  /** The size the listing claims (default: the real one). */
  readonly listedSize?: number;
}

export interface FakeRepo {
  readonly files: readonly FakeFile[];
  /** A token the repository requires (gated): 401 without it, 403 with another. */
  readonly token?: string;
}

export interface Seen {
  readonly method: string;
  readonly host: string;
  readonly path: string;
  readonly range?: string;
  readonly authorization?: string;
}

export class FakeHub {
  readonly repos = new Map<string, FakeRepo>();
  /** Every request, in order. */
  readonly seen: Seen[] = [];
  /** Plain files served at /files/NAME (the URL form of pull). */
  readonly plain = new Map<string, Uint8Array>();
  /** Cut the connection after this many body bytes on the next N CDN responses. */
  cutAfter: { bytes: number; times: number } | undefined;
  /** Answer range requests with the whole file (200), as some servers do. */
  ignoreRange = false;
  private server!: Server;
  port = 0;

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  get cdnHost(): string {
    return `localhost:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  requests(pred: (s: Seen) => boolean = () => true): Seen[] {
    return this.seen.filter(pred);
  }

  private byId = new Map<string, Uint8Array>();

  private handle(req: IncomingMessage, res: import("node:http").ServerResponse): void {
    const url = new URL(req.url!, `http://${req.headers.host}`);
    this.seen.push({ method: req.method!, host: req.headers.host!, path: url.pathname + url.search, range: req.headers.range, authorization: req.headers.authorization });
    const tree = /^\/api\/models\/([^/]+)\/([^/]+)\/tree\/([^/]+)$/.exec(url.pathname);
    const resolve = /^\/([^/]+)\/([^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (tree) {
      const repo = this.repos.get(`${tree[1]}/${tree[2]}`);
      if (!repo) return end(res, 404, "Repository not found");
      if (!this.authorized(repo, req, res)) return;
      const entries = repo.files.map((f) => {
        const sha = f.listedSha256 ?? sha256(f.bytes);
        const size = f.listedSize ?? f.bytes.byteLength;
        return f.path.endsWith(".gguf")
          ? { type: "file", oid: sha.slice(0, 40), size, path: f.path, lfs: { oid: sha, size, pointerSize: 133 } }
          : { type: "file", oid: sha.slice(0, 40), size, path: f.path };
      });
      // Two pages, linked as the hub does, to exercise paging.
      const page = url.searchParams.get("cursor") === "2" ? entries.slice(2) : entries.slice(0, 2);
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (!url.searchParams.has("cursor") && entries.length > 2) {
        headers.link = `<${this.endpoint}${url.pathname}?recursive=true&cursor=2>; rel="next"`;
      }
      res.writeHead(200, headers).end(JSON.stringify(page));
      return;
    }
    if (resolve) {
      const repo = this.repos.get(`${resolve[1]}/${resolve[2]}`);
      if (!repo) return end(res, 404, "Repository not found");
      if (!this.authorized(repo, req, res)) return;
      const file = repo.files.find((f) => f.path === decodeURIComponent(resolve[4]!));
      if (!file) return end(res, 404, "Entry not found");
      const id = sha256(file.bytes);
      this.byId.set(id, file.bytes);
      res.writeHead(302, { location: `http://${this.cdnHost}/cdn/${id}`, "x-repo-commit": "0123456789abcdef0123456789abcdef01234567" }).end();
      return;
    }
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    if (cdn) return this.serveBytes(req, res, this.byId.get(cdn[1]!));
    const plain = /^\/files\/(.+)$/.exec(url.pathname);
    if (plain) return this.serveBytes(req, res, this.plain.get(plain[1]!));
    end(res, 404, "Not found");
  }

  private authorized(repo: FakeRepo, req: IncomingMessage, res: import("node:http").ServerResponse): boolean {
    if (!repo.token) return true;
    const auth = req.headers.authorization;
    if (!auth) {
      end(res, 401, "Access to this model is restricted; you must be authenticated");
      return false;
    }
    if (auth !== `Bearer ${repo.token}`) {
      end(res, 403, "Invalid credentials");
      return false;
    }
    return true;
  }

  private serveBytes(req: IncomingMessage, res: import("node:http").ServerResponse, bytes: Uint8Array | undefined): void {
    if (!bytes) return end(res, 404, "Not found");
    const etag = `"${sha256(bytes).slice(0, 16)}"`;
    let start = 0;
    let status = 200;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    if (m && !this.ignoreRange) {
      start = Number(m[1]);
      if (start >= bytes.byteLength) {
        res.writeHead(416, { "content-range": `bytes */${bytes.byteLength}` }).end();
        return;
      }
      status = 206;
    }
    const body = bytes.subarray(start);
    const headers: Record<string, string | number> = { "content-length": body.byteLength, etag, "accept-ranges": "bytes" };
    if (status === 206) headers["content-range"] = `bytes ${start}-${bytes.byteLength - 1}/${bytes.byteLength}`;
    res.writeHead(status, headers);
    const cut = this.cutAfter;
    if (cut && cut.times > 0 && cut.bytes < body.byteLength) {
      cut.times--;
      // Send part of the body, then (once the client has had time to read it) cut the connection:
      // the client sees a transfer that stops early.
      res.write(body.subarray(0, cut.bytes), () => setTimeout(() => req.socket.destroy(), 500));
      return;
    }
    res.end(body);
  }
}

function end(res: import("node:http").ServerResponse, status: number, msg: string): void {
  res.writeHead(status, { "content-type": "text/plain" }).end(msg);
}

export function sha256(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}
