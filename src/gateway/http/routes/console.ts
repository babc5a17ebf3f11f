// `/console/`: the web console, a single-page app built by `npm run build` into web/dist (the `web/` workspace) and
// served from there as static files. Public routes: the files hold no data; the app asks for an API key itself and
// sends it on every API call. Client routes (any path under /console/ that names no file) answer index.html.
import { createReadStream } from 'node:fs';
import { readFile, realpath, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { extname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';

/** Where `npm run build` writes the console: web/dist beside src/ and dist/ (this file is at the same depth in both). */
export const defaultConsoleDir = fileURLToPath(new URL('../../../../web/dist/', import.meta.url));

/** The prefix the console is served under; the app's assets are built for it (web/vite.config.ts `base`). */
export const consolePath = '/console/';

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

/** Types sent gzipped to a client that takes gzip: text compresses to a third or less. */
const compressible = /^(text\/|application\/json|image\/svg\+xml)/;
/** Gzipped copies kept in memory, in all: the build is a few hundred KiB; past this, files are sent as they are. */
const maxGzipCacheBytes = 16 * 1024 * 1024;
/** A file over this is never gzipped in memory (the build has none). */
const maxGzipFileBytes = 4 * 1024 * 1024;
const gzipAsync = promisify(gzip);

/** Files under assets/ carry a content hash in their names (Vite): a new build gives new names. */
const immutable = 'public, max-age=31536000, immutable';

/**
 * What the page may do: its own scripts and styles only, API calls and the WebSockets to this origin only, never
 * framed. `'self'` covers same-origin `ws:`/`wss:` in current browsers; older ones need them named. Images may be
 * `blob:` URLs: a curation's images are fetched with the key and shown from the page's own memory.
 */
const contentSecurityPolicy = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const AnyQuery = Type.Object({}, { additionalProperties: true });
const PathParams = Type.Object({ '*': Type.String({ maxLength: 1024 }) });

export interface ConsoleRouteOptions {
  /** The built console (default: web/dist of this checkout). */
  dir?: string;
}

/**
 * The console routes, for `app.register`.
 *
 * @example
 * // GET /console/                   → 200 index.html (Cache-Control: no-cache)
 * // GET /console/assets/index-3f.js → 200 (Cache-Control: public, max-age=31536000, immutable)
 * // GET /console/functions/hello    → 200 index.html (a client route)
 * // without a build                 → 503 "the console is not built: run `npm run build`"
 */
export function consoleRoutes(options: ConsoleRouteOptions = {}): FastifyPluginAsync {
  const dir = options.dir ?? defaultConsoleDir;
  return (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();
    let root: string | null = null;
    /** The real path of the build directory, or null while there is no build (looked up again on each request). */
    const buildRoot = async (): Promise<string | null> => {
      if (root !== null) return root;
      try {
        const real = await realpath(dir);
        if (!(await stat(join(real, 'index.html'))).isFile()) return null;
        root = real;
        return real;
      } catch {
        return null;
      }
    };

    /** Gzipped files by path, with the modification time and size they were read at (a rebuild replaces them). */
    const gzipped = new Map<string, { mtimeMs: number; size: number; body: Buffer }>();
    let gzippedBytes = 0;
    const gzippedCopy = async (file: string, mtimeMs: number, size: number): Promise<Buffer | null> => {
      const known = gzipped.get(file);
      if (known !== undefined && known.mtimeMs === mtimeMs && known.size === size) return known.body;
      if (size > maxGzipFileBytes) return null;
      const body = await gzipAsync(await readFile(file));
      if (known !== undefined) gzippedBytes -= known.body.length;
      if (gzippedBytes + body.length > maxGzipCacheBytes) {
        gzipped.clear();
        gzippedBytes = 0;
      }
      gzipped.set(file, { mtimeMs, size, body });
      gzippedBytes += body.length;
      return body;
    };

    const send = async (
      request: FastifyRequest,
      reply: FastifyReply,
      file: string,
      info: { size: number; mtimeMs: number },
      cache: string,
    ) => {
      const type = contentTypes[extname(file).toLowerCase()] ?? 'application/octet-stream';
      void reply
        .code(200)
        .header('content-type', type)
        .header('cache-control', cache)
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer');
      if (type.startsWith('text/html')) {
        void reply.header('content-security-policy', contentSecurityPolicy).header('x-frame-options', 'DENY');
      }
      if (compressible.test(type)) {
        void reply.header('vary', 'accept-encoding');
        if (takesGzip(request.headers['accept-encoding'])) {
          const body = await gzippedCopy(file, info.mtimeMs, info.size);
          if (body !== null) {
            return reply.header('content-encoding', 'gzip').header('content-length', body.length).send(body);
          }
        }
      }
      return reply.header('content-length', info.size).send(createReadStream(file));
    };

    const serve = async (path: string, request: FastifyRequest, reply: FastifyReply) => {
      const base = await buildRoot();
      if (base === null) {
        return reply
          .code(503)
          .header('content-type', 'text/plain; charset=utf-8')
          .header('cache-control', 'no-store')
          .header('retry-after', '60')
          .send('the console is not built: run `npm run build` (it builds web/ into web/dist), then reload\n');
      }
      const index = join(base, 'index.html');
      // Fastify hands the path decoded. A NUL, a backslash or a `..` segment never names a file of the build.
      const segments = path.split('/').filter((segment) => segment !== '' && segment !== '.');
      if (segments.some((segment) => segment === '..' || segment.includes('\0') || segment.includes('\\'))) {
        return reply
          .code(404)
          .header('content-type', 'text/plain; charset=utf-8')
          .send('not found: the path leaves the console\n');
      }
      if (segments.length > 0) {
        const candidate = join(base, ...segments);
        try {
          // Resolved through links, the file must still be inside the build.
          const real = await realpath(candidate);
          const info = await stat(real);
          if (real.startsWith(base + sep) && info.isFile()) {
            const hashed = segments[0] === 'assets';
            return await send(request, reply, real, info, hashed ? immutable : 'no-cache');
          }
        } catch {
          // Not a file of the build: a client route, or a missing file.
        }
        // A name with an extension asks for a file: 404, not the app (a missing script must not run HTML).
        if (extname(segments[segments.length - 1] ?? '') !== '') {
          return reply.code(404).header('content-type', 'text/plain; charset=utf-8').send('not found\n');
        }
      }
      return send(request, reply, index, await stat(index), 'no-cache');
    };

    const schema = { hide: true, querystring: AnyQuery };
    app.get('/console', { schema }, (_request, reply) => reply.redirect(consolePath, 302));
    app.get('/console/', { schema }, (request, reply) => serve('', request, reply));
    app.get('/console/*', { schema: { ...schema, params: PathParams } }, (request, reply) =>
      serve(request.params['*'], request, reply),
    );
    return Promise.resolve();
  };
}

/** Whether a request asks for JSON by name (`Accept: application/json`), as API clients do; browsers never do. */
export function asksForJson(accept: string | undefined): boolean {
  return accept !== undefined && /(^|,)\s*application\/json\s*(;|,|$)/i.test(accept);
}

/** Whether an `Accept-Encoding` takes gzip (named, without `q=0`). */
export function takesGzip(acceptEncoding: string | undefined): boolean {
  if (acceptEncoding === undefined) return false;
  return acceptEncoding.split(',').some((part) => {
    const [coding, ...params] = part.trim().toLowerCase().split(';');
    if (coding?.trim() !== 'gzip') return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}
