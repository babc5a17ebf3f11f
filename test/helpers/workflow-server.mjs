// A Savassan server for the workflow crash test: the embedded platform from dist/ on a persistent data dir, in its
// own process (killed with SIGKILL and started again on the same dir). Usage:
//   node workflow-server.mjs DATA_DIR launch SPEC_JSON BUNDLE_PATH  deploys function `fn` and workflow `crash`,
//                                                                   launches it and prints `launched NAME`;
//   node workflow-server.mjs DATA_DIR resume NAME                   waits for execution NAME to end, prints one
//                                                                   JSON line {view, nodes}, and stops.
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { startEmbedded } from '../../dist/embedded/embedded-platform.js';

const [dataDir, mode, arg, bundlePath] = process.argv.slice(2);
const platform = await startEmbedded({ dataDir, port: 0, sandbox: 'process', stemCells: false, eventLoops: 1 });
const project = 'savassan';
const domain = 'development';
if (mode === 'launch') {
  const zip = await readFile(bundlePath);
  const answer = await fetch(`${platform.url}/v1/functions/fn`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ code: zip.toString('base64'), timeoutSeconds: 30, asyncConcurrency: 20 }),
  });
  if (!answer.ok) throw new Error(`deploy failed: ${answer.status} ${await answer.text()}`);
  await platform.workflows.deployer.deploy('crash', JSON.parse(arg));
  const key = await platform.workflows.backend.launch({ project, domain, workflow: 'crash', inputs: {} });
  console.log(`launched ${key.name}`);
} else {
  const key = { project, domain, name: arg };
  const terminal = new Set(['SUCCEEDED', 'FAILED', 'ABORTED', 'TIMED_OUT']);
  for (;;) {
    const view = await platform.workflows.backend.get(key);
    if (terminal.has(view.closure.phase)) {
      const nodes = await platform.workflows.backend.nodeExecutions(key);
      console.log(JSON.stringify({ view, nodes }));
      break;
    }
    await sleep(50);
  }
  await platform.close();
}
