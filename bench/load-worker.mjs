// One thread of the bench's load generator (see `load` in bench/load.ts): fires its share of the requests with its
// share of the concurrency and posts back the latencies and its start and end times. Plain JavaScript: a worker
// thread does not get the bench's TypeScript loader.
import { Agent } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import { post } from './http-post.mjs';

const { url, total, concurrency, firstN, body, okStatus } = workerData;

parentPort.once('message', async () => {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const target = new URL(url);
  const latencies = new Float64Array(total);
  let errors = 0;
  let next = 0;
  const startedAt = performance.timeOrigin + performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const n = next++;
        const hit = await post(agent, target, body ?? `{"n":${firstN + n}}`);
        if (hit.status !== okStatus) errors++;
        latencies[n] = hit.ms;
      }
    }),
  );
  const endedAt = performance.timeOrigin + performance.now();
  agent.destroy();
  parentPort.postMessage({ latencies, errors, startedAt, endedAt }, [latencies.buffer]);
});
parentPort.postMessage('ready');
