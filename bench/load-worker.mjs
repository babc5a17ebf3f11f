// One thread of the bench's load generator (see bench/load.ts): fires its share of the requests with its share of
// the concurrency over Node's keep-alive http.Agent and posts back the latencies and its start/end times.
// Plain JavaScript so the worker needs no loader.
import { Agent, request } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';

const { url, total, concurrency, firstN } = workerData;
const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
const target = new URL(url);

function post(body) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request(
      target,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

parentPort.once('message', async () => {
  const latencies = new Float64Array(total);
  let errors = 0;
  let next = 0;
  const startedAt = performance.timeOrigin + performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const n = next++;
        const hit = await post(`{"n":${firstN + n}}`);
        if (hit.status !== 200) errors++;
        latencies[n] = hit.ms;
      }
    }),
  );
  const endedAt = performance.timeOrigin + performance.now();
  agent.destroy();
  parentPort.postMessage({ latencies, errors, startedAt, endedAt }, [latencies.buffer]);
});
parentPort.postMessage('ready');
