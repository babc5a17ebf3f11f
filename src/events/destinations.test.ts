import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { isPlatformError } from '../core/errors.js';
import { type DestinationRecord, Destinations, maxDestinationDepth } from './destinations.js';

const record: DestinationRecord = {
  version: '1.0',
  timestamp: new Date(0).toISOString(),
  requestContext: { requestId: 'e1', functionArn: 'arn', condition: 'Success', approximateInvokeCount: 1 },
  requestPayload: {},
  responseContext: { statusCode: 200, executedVersion: '1' },
  responsePayload: null,
};
const source = { functionName: 'fn', eventId: 'e1', allowNet: ['127.0.0.1/32'], depth: 0 };

describe('Destinations', () => {
  let server: Server;
  let base: string;
  before(async () => {
    server = createServer((req, res) => {
      if (req.url === '/trickle') {
        // Headers one byte at a time, never finished: only an overall deadline ends this.
        const head = 'HTTP/1.1 200 OK\r\nX-Slow: ';
        let sent = 0;
        const timer = setInterval(() => res.socket?.write(head.charAt(sent++) || 'a'), 20);
        res.on('close', () => clearInterval(timer));
        return;
      }
      if (req.url === '/endless') {
        res.writeHead(200);
        const timer = setInterval(() => res.write('x'.repeat(1024)), 5);
        res.on('close', () => clearInterval(timer));
        return;
      }
      res.writeHead(req.url === '/ok' ? 204 : 500).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise((resolve) => server.close(resolve)));

  const destinations = new Destinations({
    submit: () => Promise.resolve(),
    webhookTimeoutMs: 300,
    allowHostLoopback: true,
  });

  it('gives up on a webhook that trickles its answer, at the deadline', async () => {
    await assert.rejects(destinations.deliver(`${base}/trickle`, record, source), /no answer within 300 ms/);
  });

  it('takes a 2xx as delivery without reading an endless body, and a 5xx as failure', async () => {
    await destinations.deliver(`${base}/endless`, record, source);
    await destinations.deliver(`${base}/ok`, record, source);
    await assert.rejects(destinations.deliver(`${base}/fail`, record, source), /answered 500/);
  });

  it("refuses the host's loopback unless the operator allows it, and a chain of functions too long", async () => {
    const strict = new Destinations({ submit: () => Promise.resolve() });
    await assert.rejects(strict.deliver(`${base}/ok`, record, source), /may not reach/);
    await assert.rejects(strict.deliver(`http://[::ffff:7f00:1]:1/ok`, record, source), /may not reach/);
    await assert.rejects(
      strict.deliver('next', record, { ...source, depth: maxDestinationDepth }),
      (err) => isPlatformError(err) && /destination functions in a row/.test(err.message),
    );
  });
});
