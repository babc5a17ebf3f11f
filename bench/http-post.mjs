// One POST over a keep-alive http.Agent, timed: the request of the bench's load generator (bench/load.ts and its
// worker threads, bench/load-worker.mjs). Plain JavaScript so a worker thread can load it without the bench's
// TypeScript loader; its types are in http-post.d.mts.
import { request } from 'node:http';

export function post(agent, url, body) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, ms: performance.now() - started, body: text, headers: res.headers }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
