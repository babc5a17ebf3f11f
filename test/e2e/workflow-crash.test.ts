// A server SIGKILLed in the middle of a workflow execution and started again on the same data dir: the execution
// finishes, and no node attempt ran twice (an attempt the dead process had claimed is given up as lost and run as a
// new attempt, which does not count against the node's retries).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { ExecutionView, NodeExecutionView } from '../../src/core/ports/execution-backend.js';
import { repoRoot } from '../helpers/server-process.js';
import { workflowFunctionBundle } from '../helpers/workflow-functions.js';

const script = join(repoRoot, 'test', 'helpers', 'workflow-server.mjs');

/** Starts the server script; resolves with the process and a reader of its output so far. */
function server(args: string[]): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [script, ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function starts(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => (JSON.parse(line) as { tag: string }).tag);
}

describe('a workflow execution across a server crash', () => {
  let dataDir: string;
  const running: ChildProcess[] = [];

  after(async () => {
    for (const child of running) if (child.exitCode === null) child.kill('SIGKILL');
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
  });

  it('finishes after a SIGKILL and a restart, every node attempt run at most once', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'savassan-wf-crash-'));
    const bundlePath = join(dataDir, 'fn.zip');
    await writeFile(bundlePath, await workflowFunctionBundle(join(dataDir, 'src')));
    const startLog = join(dataDir, 'starts.log');
    const node = (tag: string, input: Record<string, unknown>) => ({
      function: 'fn',
      input: { ...input, tag, startLog, sleepMs: 1500 },
    });
    const spec = {
      nodes: {
        a: node('a', { n: 1 }),
        b: node('b', { n: '$.nodes.a.output.n', add: 1 }),
        side: node('side', { n: 100 }),
        c: node('c', { n: '$.nodes.b.output.n', add: '$.nodes.side.output.n' }),
      },
      output: '$.nodes.c.output.n',
    };
    const first = server([join(dataDir, 'data'), 'launch', JSON.stringify(spec), bundlePath]);
    running.push(first.child);
    const name = await until('the launch', () => /launched (\S+)/.exec(first.output())?.[1]);
    // Killed while b runs (a and side have run).
    await until('node b to start', async () => ((await starts(startLog)).includes('b') ? true : undefined));
    first.child.kill('SIGKILL');
    await first.exited;

    const second = server([join(dataDir, 'data'), 'resume', name]);
    running.push(second.child);
    const result = await until('the execution to end', () => {
      const line = second
        .output()
        .split('\n')
        .find((l) => l.startsWith('{"view"'));
      return line === undefined ? undefined : (JSON.parse(line) as { view: ExecutionView; nodes: NodeExecutionView[] });
    });
    assert.equal(await second.exited, 0, second.output());
    assert.equal(result.view.closure.phase, 'SUCCEEDED', JSON.stringify(result.view));
    const nodes = new Map(result.nodes.map((n) => [n.id.node_id, n]));
    const b = nodes.get('b')!;
    // b's first attempt was lost with the process; its second ran in the new one.
    assert.equal(b.attempts.length, 2, JSON.stringify(b));
    assert.equal(b.attempts[0]?.phase, 'FAILED');
    assert.equal(b.attempts[0]?.error?.code, 'LOST');
    assert.equal(b.attempts[1]?.phase, 'SUCCEEDED');
    // Every node ran at most once per attempt.
    const runs = await starts(startLog);
    for (const [id, view] of nodes) {
      const count = runs.filter((tag) => tag === id).length;
      assert.ok(
        count >= 1 && count <= view.attempts.length,
        `${id} ran ${count} times in ${view.attempts.length} attempts`,
      );
      assert.equal(view.closure.phase, 'SUCCEEDED');
      const ids = view.invocation_ids;
      assert.equal(new Set(ids).size, ids.length);
    }
    // a ended before b started: it was not run again. (side may have been under way at the kill: lost too.)
    assert.equal(nodes.get('a')?.attempts.length, 1);
  });
});
