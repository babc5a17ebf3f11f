// A run's live view against a real `savassan start`: the socket sends the run's views as the fine-tune workflow moves
// and closes after the final one; an unknown run is refused before the upgrade. (The whole run to a trained model,
// with the trainer's lines, is driven in the browser by test/console/intelligence.test.ts.)
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { refusedUpgrade } from '../helpers/live-logs.js';
import { startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

interface Frame {
  type: string;
  run?: { id: string; status: string; error: { code: string; message: string } | null };
}

describe('a run live over its WebSocket', () => {
  let server: ServerProcess;

  before(async () => {
    server = await startServer([]);
  });
  after(async () => {
    await server.cleanup();
  });

  const post = async (path: string, body: unknown, contentType = 'application/json') => {
    const response = await fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': contentType },
      body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
    });
    const text = await response.text();
    assert.ok(response.ok, `POST ${path}: ${response.status} ${text}`);
    return JSON.parse(text) as Record<string, unknown>;
  };

  it('sends each view of a run until it ends, then closes', async () => {
    // A dataset with no image in it: the curation fails, and so does the run.
    await post('/v1/datasets/not-images/images?name=notes.txt', 'not an image', 'application/octet-stream');
    const run = await post('/v1/intelligence/runs', { prompt: 'LoRA of my dog Fluffy', datasetId: 'not-images' });
    const id = String(run['id']);
    const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/v1/intelligence/runs/${id}/ws`);
    const frames: Frame[] = [];
    ws.on('message', (data: Buffer) => frames.push(JSON.parse(data.toString('utf8')) as Frame));
    const code = await new Promise<number>((resolve, reject) => {
      ws.once('close', resolve);
      ws.once('error', reject);
    });
    assert.equal(code, 1000);
    assert.ok(frames.length > 0);
    assert.ok(
      frames.every((f) => f.type === 'run' && f.run?.id === id),
      JSON.stringify(frames),
    );
    const statuses = frames.map((f) => f.run?.status);
    assert.equal(statuses.at(-1), 'FAILED', JSON.stringify(statuses));
    // Each frame is a change.
    for (let i = 1; i < frames.length; i++) assert.notDeepEqual(frames[i], frames[i - 1]);
    assert.ok(frames.at(-1)?.run?.error !== null);
  });

  it('refuses an unknown run before the upgrade', async () => {
    assert.deepEqual(await refusedUpgrade(server.url, '/v1/intelligence/runs/run-zzzzzzzzzzzzzzzzzzzzzzzzzz/ws'), {
      status: 404,
      code: 'NOT_FOUND',
    });
  });
});
