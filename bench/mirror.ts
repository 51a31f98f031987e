/**
 * A caching mirror for the build bench: a reverse proxy on the lab bridge to
 * a Debian archive, so the host's builders and the guests' installer read
 * packages from one place with the same cache warmth. pool/ files are
 * immutable (Debian's archive never changes a file under a version), so they
 * are kept between runs in FORGE_BENCH_CACHE/mirror; everything else (dists/:
 * Release, InRelease, Packages) is fetched once per run and then served from
 * the run's copy, so every tool of one run sees the same index.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createReadStream, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, normalize } from 'node:path';

export interface Mirror {
  url: string;
  /** Bytes fetched from the upstream archive so far (cache misses). */
  upstreamBytes(): number;
  /** An earlier run left packages in the pool cache. */
  warm(): boolean;
  /** Where the cache lives (the bench keeps its partial results beside it). */
  cacheDir: string;
  /** Every request so far, in arrival order: when (ms since the epoch), the path under debian/, and the status answered. */
  requests(): readonly MirrorRequest[];
  stop(): Promise<void>;
}

export interface MirrorRequest {
  at: number;
  path: string;
  status: number;
}

const CACHE = join(process.env['FORGE_BENCH_CACHE'] ?? join(homedir(), '.cache', 'forge-bench'), 'mirror');

/** Serve `http://HOST:PORT/debian/...` from `upstream/...`. */
export async function startMirror(host: string, upstream: string): Promise<Mirror> {
  const runDir = join(CACHE, `run-${process.pid}`);
  rmSync(runDir, { recursive: true, force: true });
  let fetched = 0;
  const log: MirrorRequest[] = [];
  const inflight = new Map<string, Promise<string | undefined>>();
  const fill = (rel: string): Promise<string | undefined> => {
    const file = rel.startsWith('pool/') ? join(CACHE, 'pool-cache', rel) : join(runDir, rel);
    if (existsSync(file) && statSync(file).isFile()) return Promise.resolve(file);
    const running = inflight.get(file);
    if (running !== undefined) return running;
    const p = (async (): Promise<string | undefined> => {
      const res = await fetch(`${upstream}/${rel}`, { signal: AbortSignal.timeout(600_000) });
      if (res.status !== 200) return undefined;
      const body = Buffer.from(await res.arrayBuffer());
      fetched += body.length;
      mkdirSync(dirname(file), { recursive: true });
      const tmp = `${file}.tmp-${process.pid}`;
      await writeFile(tmp, body);
      renameSync(tmp, file);
      return file;
    })().finally(() => inflight.delete(file));
    inflight.set(file, p);
    return p;
  };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0] as string);
    const rel = normalize(path).replace(/^\/+/, '');
    if (!rel.startsWith('debian/') || rel.includes('..') || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404).end();
      return;
    }
    const at = Date.now();
    const file = await fill(rel.slice('debian/'.length));
    log.push({ at, path: rel.slice('debian/'.length), status: file === undefined ? 404 : 200 });
    if (file === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': statSync(file).size, 'content-type': 'application/octet-stream' });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
  };
  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    url: `http://${host}:${port}`,
    upstreamBytes: () => fetched,
    warm: () => existsSync(join(CACHE, 'pool-cache', 'pool', 'main')),
    cacheDir: CACHE,
    requests: () => log,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
        rmSync(runDir, { recursive: true, force: true });
      }),
  };
}
