// OpenTelemetry traces end to end: a real server process exports the spans of an invocation to a real OTLP/HTTP
// receiver (README "Traces"); the function receives the handler-run span's context and its own span joins.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { readBundle } from '../../src/client/bundle.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.js';
import { repoRoot, startServer, type ServerProcess } from '../helpers/server-process.js';

const fixture = `${repoRoot}test/fixtures/functions/traced`;

interface Seen {
  traceparent: string | null;
  xRayTraceId: string | null;
  hasTraceparentField: boolean;
  hasXRayField: boolean;
  envTraceparent: string | null;
  envXRay: string | null;
  exported?: number;
}

const kind = { internal: 1, server: 2, client: 3 } as const;

/** The span of `trace` named `name` whose parent is `parent`, once exported. */
function child(receiver: OtlpReceiver, parent: ReceivedSpan, name: string): Promise<ReceivedSpan> {
  return receiver.waitFor((s) => s.traceId === parent.traceId && s.parentSpanId === parent.spanId && s.name === name);
}

/** A POST of `{}` on a connection of its own (no keep-alive agent). */
function postOnNewConnection(url: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', agent: false, headers: { ...headers, 'content-length': '2' } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end('{}');
  });
}

describe('traces', () => {
  let receiver: OtlpReceiver;
  let server: ServerProcess;

  before(async () => {
    receiver = await startOtlpReceiver();
    server = await startServer([], undefined, {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      // Exported soon after they end, so the test does not wait out the default 5 s batches.
      OTEL_BSP_SCHEDULE_DELAY: '20',
    });
    await server.client.deploy('traced', await readBundle(fixture), { network: true });
  });

  after(async () => {
    await server?.cleanup();
    await receiver?.close();
  });

  it('exports a cold invocation as one trace that continues the caller, down to the function', async () => {
    const callerTrace = randomBytes(16).toString('hex');
    const callerSpan = randomBytes(8).toString('hex');
    const response = await server.client.invoke(
      'traced',
      { otlp: `${receiver.url}/v1/traces` },
      { headers: { traceparent: `00-${callerTrace}-${callerSpan}-01` } },
    );
    assert.equal(response.start, 'cold');
    const seen = JSON.parse(response.payload) as Seen;

    const http = await receiver.waitFor(
      (s) => s.traceId === callerTrace && s.kind === kind.server && s.name.startsWith('POST'),
    );
    assert.equal(http.parentSpanId, callerSpan);
    assert.equal(http.name, 'POST /v1/functions/{name}/invoke');
    assert.equal(http.attributes['http.response.status_code'], 200);
    assert.equal(http.attributes['faas.invocation_id'], response.invocationId);

    const checkout = await child(receiver, http, 'pool checkout');
    assert.equal(checkout.attributes['faas.coldstart'], true);
    const wait = await child(receiver, checkout, 'cold start wait');
    const provision = await child(receiver, wait, 'provision');
    assert.equal(provision.attributes['savassan.provision.outcome'], 'created');
    const init = await child(receiver, provision, 'sandbox init');
    assert.equal(init.attributes['faas.name'], 'traced');

    const call = await child(receiver, http, 'invoke traced');
    assert.equal(call.kind, kind.client);
    const agent = await child(receiver, call, 'invoke traced');
    assert.equal(agent.kind, kind.server);
    assert.equal(agent.attributes['faas.invocation_id'], response.invocationId);
    const run = await child(receiver, agent, 'handler run');

    // The function's context is the handler-run span's, in every form it is given.
    assert.equal(seen.traceparent, `00-${callerTrace}-${run.spanId}-01`);
    assert.equal(seen.envTraceparent, seen.traceparent);
    const xray = `Root=1-${callerTrace.slice(0, 8)}-${callerTrace.slice(8)};Parent=${run.spanId};Sampled=1`;
    assert.equal(seen.xRayTraceId, xray);
    assert.equal(seen.envXRay, xray);
    // The span the function exported itself joins the trace under the handler run.
    assert.equal(seen.exported, 200);
    const own = await child(receiver, run, 'function work');
    assert.equal(own.service, 'traced-function');
    // The record leads to the trace.
    assert.equal((await server.client.getInvocation(response.invocationId)).traceId, callerTrace);
    for (const span of [http, checkout, wait, provision, init, call, agent, run]) {
      assert.equal(span.statusCode, 0, `${span.name} is not an error`);
      assert.equal(span.service, 'savassan');
    }
  });

  it('starts a new trace for a warm invocation without a traceparent', async () => {
    const response = await server.client.invoke('traced', {});
    assert.equal(response.start, 'warm');
    const seen = JSON.parse(response.payload) as Seen;
    const [, traceId] = (seen.traceparent ?? '').split('-');
    const http = await receiver.waitFor(
      (s) => s.traceId === traceId && s.kind === kind.server && s.parentSpanId === '',
    );
    const checkout = await child(receiver, http, 'pool checkout');
    assert.equal(checkout.attributes['faas.coldstart'], false);
    assert.equal(receiver.spans.filter((s) => s.traceId === traceId && s.name === 'cold start wait').length, 0);
  });

  it("passes an unsampled caller's context on to the function and exports nothing of it", async () => {
    const callerTrace = randomBytes(16).toString('hex');
    const callerSpan = randomBytes(8).toString('hex');
    const response = await server.client.invoke(
      'traced',
      {},
      { headers: { traceparent: `00-${callerTrace}-${callerSpan}-00` } },
    );
    const seen = JSON.parse(response.payload) as Seen;
    assert.match(seen.traceparent ?? '', new RegExp(`^00-${callerTrace}-[0-9a-f]{16}-00$`));
    assert.match(seen.xRayTraceId ?? '', /;Sampled=0$/);
    assert.equal((await server.client.getInvocation(response.invocationId)).traceId, null);
    // Spans are exported in the order they end: once a later invocation's are in, the unsampled one's would be.
    const later = await server.client.invoke('traced', {});
    const laterTrace = (JSON.parse(later.payload) as Seen).traceparent?.split('-')[1];
    await receiver.waitFor((s) => s.traceId === laterTrace && s.name === 'handler run');
    await receiver.waitFor((s) => s.traceId === laterTrace && s.name.startsWith('POST'));
    assert.deepEqual(
      receiver.spans.filter((s) => s.traceId === callerTrace),
      [],
    );
  });

  it('marks the spans of a failed invocation as errors', async () => {
    const answer = await fetch(`${server.url}/v1/functions/traced/invoke`, {
      method: 'POST',
      body: JSON.stringify({ fail: true }),
    });
    assert.equal(answer.status, 502);
    const invocationId = answer.headers.get('x-savassan-invocation-id');
    const http = await receiver.waitFor(
      (s) => s.attributes['faas.invocation_id'] === invocationId && s.kind === kind.server && s.name.startsWith('POST'),
    );
    assert.equal(http.attributes['http.response.status_code'], 502);
    const call = await child(receiver, http, 'invoke traced');
    const agent = await child(receiver, call, 'invoke traced');
    const run = await child(receiver, agent, 'handler run');
    for (const span of [http, call, agent, run]) assert.equal(span.statusCode, 2, `${span.name} is an error`);
  });

  it("traces the Lambda API's Invoke and function URLs the same way, continuing the caller", async () => {
    const created = await fetch(`${server.url}/v1/functions/traced/url`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ auth: 'none' }),
    });
    assert.ok(created.ok, await created.text());
    const doors = [
      {
        url: `${server.url}/2015-03-31/functions/traced/invocations`,
        span: 'POST /2015-03-31/functions/{FunctionName}/invocations',
      },
      { url: `${server.url}/fn/traced/some/path`, span: 'POST /fn/{name}/*' },
    ];
    for (const door of doors) {
      const callerTrace = randomBytes(16).toString('hex');
      const callerSpan = randomBytes(8).toString('hex');
      const answer = await fetch(door.url, {
        method: 'POST',
        headers: { traceparent: `00-${callerTrace}-${callerSpan}-01`, 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(answer.status, 200, await answer.clone().text());
      const http = await receiver.waitFor(
        (s) => s.traceId === callerTrace && s.kind === kind.server && s.name === door.span,
      );
      assert.equal(http.parentSpanId, callerSpan, door.span);
      const call = await child(receiver, http, 'invoke traced');
      const agent = await child(receiver, call, 'invoke traced');
      const run = await child(receiver, agent, 'handler run');
      assert.equal(http.attributes['faas.invoked_name'], 'traced');
      assert.equal(typeof http.attributes['faas.invocation_id'], 'string');
      // The record of the invocation names the caller's trace.
      const record = await server.client.getInvocation(String(http.attributes['faas.invocation_id']));
      assert.equal(record.traceId, callerTrace);
      assert.equal(run.statusCode, 0);
    }
  });
});

describe('traces with several event loops', () => {
  let receiver: OtlpReceiver;
  let server: ServerProcess;

  before(async () => {
    receiver = await startOtlpReceiver();
    server = await startServer(['--event-loops', '2'], undefined, {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: '20',
    });
    await server.client.deploy('traced', await readBundle(fixture));
  });

  after(async () => {
    await server?.cleanup();
    await receiver?.close();
  });

  it("continues the caller's trace whichever loop took the connection", async () => {
    const laneInvocations = async (): Promise<number> => {
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      return Number(/^savassan_lane_invocations_total\{[^}]*\} (\d+)$/m.exec(metrics)?.[1] ?? 0);
    };
    // Each request opens a connection of its own, which either loop may accept: go on until both took some.
    let sent = 0;
    let byLane = 0;
    while (sent < 64 && (byLane === 0 || byLane === sent)) {
      const callerTrace = randomBytes(16).toString('hex');
      const callerSpan = randomBytes(8).toString('hex');
      const answer = await postOnNewConnection(`${server.url}/v1/functions/traced/invoke`, {
        traceparent: `00-${callerTrace}-${callerSpan}-01`,
      });
      assert.equal(answer.status, 200);
      const seen = JSON.parse(answer.body) as Seen;
      assert.equal(seen.traceparent?.split('-')[1], callerTrace);
      const http = await receiver.waitFor((s) => s.traceId === callerTrace && s.name.startsWith('POST'));
      assert.equal(http.parentSpanId, callerSpan);
      sent += 1;
      byLane = await laneInvocations();
    }
    assert.ok(byLane > 0 && byLane < sent, `${byLane} of ${sent} requests were taken by the worker thread's loop`);
  });
});

describe('traces off', () => {
  let receiver: OtlpReceiver;

  before(async () => {
    receiver = await startOtlpReceiver();
  });

  after(async () => {
    await receiver?.close();
  });

  it('OTEL_SDK_DISABLED: nothing is exported, and the function gets no trace context', async () => {
    const server = await startServer([], undefined, {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: '20',
      OTEL_SDK_DISABLED: 'true',
    });
    try {
      await server.client.deploy('traced', await readBundle(fixture), { network: true });
      const traceparent = `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
      const response = await server.client.invoke('traced', {}, { headers: { traceparent } });
      assert.deepEqual(JSON.parse(response.payload), {
        traceparent: null,
        xRayTraceId: null,
        hasTraceparentField: false,
        hasXRayField: false,
        envTraceparent: null,
        envXRay: null,
      });
      // A stop flushes whatever a tracer would have buffered.
      assert.equal(await server.stop(), 0);
    } finally {
      await server.cleanup();
    }
    assert.equal(receiver.requests(), 0);
  });

  it('refuses to start with a sampler argument that is not a ratio', async () => {
    await assert.rejects(
      startServer([], undefined, {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
        OTEL_TRACES_SAMPLER_ARG: 'one percent',
      }),
      /OTEL_TRACES_SAMPLER_ARG="one percent" is not valid: expected a number from 0 to 1/,
    );
  });
});
