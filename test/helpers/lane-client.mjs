// A client in its own process, for tests that must reach a gateway while its main event loop is blocked (so that
// only its other event loops accept the connections). Usage: node lane-client.mjs <base-url> <plan-json>; the plan
// is {requests: [{method, path, body?, headers?, until?}], sequential?} (each request on its own connection, all at
// once or one after another; `until`: read a streamed answer until this text appears, then close) or {load: {path, body, total, concurrency}} (keep-alive
// connections) or {websocket: {path, until}} (a WebSocket, read until a frame holds this text). Prints "started" once
// it begins, then one JSON line with the results.
import { Agent, request } from 'node:http';
import { WebSocket } from 'ws';

const [base, planText] = process.argv.slice(2);
const plan = JSON.parse(planText);

function send(options, body, until) {
  return new Promise((resolve) => {
    const req = request(new URL(options.path, base), options, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        text += chunk;
        if (until !== undefined && text.includes(until)) {
          res.destroy();
          resolve({ status: res.statusCode, headers: res.headers, body: text });
        }
      });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
    });
    req.on('error', (err) => resolve({ status: 0, error: err.message }));
    req.end(body);
  });
}

function websocket({ path, until }) {
  return new Promise((resolve) => {
    const ws = new WebSocket(new URL(path, base.replace(/^http/, 'ws')));
    const frames = [];
    ws.on('message', (data) => {
      frames.push(data.toString('utf8'));
      if (frames.at(-1).includes(until)) {
        ws.terminate();
        resolve({ status: 101, body: frames.join('\n') });
      }
    });
    ws.on('unexpected-response', (_req, res) => resolve({ status: res.statusCode, body: '' }));
    ws.on('error', (err) => resolve({ status: 0, error: err.message, body: '' }));
    ws.on('close', (code) => resolve({ status: 0, error: `closed ${code}`, body: frames.join('\n') }));
  });
}

console.log('started');
if (plan.websocket !== undefined) {
  console.log(JSON.stringify([await websocket(plan.websocket)]));
} else if (plan.requests !== undefined) {
  const one = (r) => send({ method: r.method, path: r.path, headers: r.headers ?? {}, agent: false }, r.body, r.until);
  const results = [];
  if (plan.sequential === true) for (const r of plan.requests) results.push(await one(r));
  else results.push(...(await Promise.all(plan.requests.map(one))));
  console.log(JSON.stringify(results));
} else {
  const { path, body, total, concurrency } = plan.load;
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const results = [];
  let next = 0;
  const worker = async () => {
    while (next < total) {
      next += 1;
      const hit = await send({ method: 'POST', path, agent, headers: { 'content-type': 'application/json' } }, body);
      results.push({ status: hit.status, body: hit.body });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  console.log(JSON.stringify(results));
}
