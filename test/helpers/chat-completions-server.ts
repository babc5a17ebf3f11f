// A real HTTP server that speaks the OpenAI chat-completions protocol (`POST /v1/chat/completions`) with scripted
// behaviour, for the OpenAI-compatible adapter's tests and the plan bench. It keeps every request it got.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the server does with one request. */
export type ChatBehaviour =
  | { kind: 'answer'; content: string }
  | { kind: 'status'; status: number; body: string; headers?: Record<string, string> }
  /** Holds the request this long before answering `content` (the client times out first). */
  | { kind: 'slow'; ms: number; content: string }
  /** 400 naming response_format when the request asks for json_schema; else answers `content`. */
  | { kind: 'no-json-schema'; content: string }
  /** A 200 whose body is this text as is. */
  | { kind: 'raw'; body: string }
  /** `bytes` bytes of `x` with this status, streamed in 64 KiB writes that wait for the client to take them. */
  | { kind: 'huge'; status: number; bytes: number };

/** How far a `huge` body went: bytes written, and whether it ended (all sent) or closed first (the client left). */
export interface HugeStream {
  written: number;
  ended: boolean;
  /** Resolves once the response is over either way. */
  over: Promise<void>;
}

export interface ChatRequestSeen {
  authorization: string | undefined;
  body: {
    model?: string;
    messages?: { role: string; content: string }[];
    response_format?: { type: string; json_schema?: { schema?: unknown } };
    max_tokens?: number;
    temperature?: number;
  };
}

export interface ChatCompletionsServer {
  /** The base URL to configure, `http://127.0.0.1:PORT/v1`. */
  url: string;
  requests: ChatRequestSeen[];
  /** Every `huge` body served, in order. */
  streams: HugeStream[];
  /** The behaviour for each next request (the last one repeats). */
  script(behaviours: ChatBehaviour[]): void;
  close(): Promise<void>;
}

const completion = (content: string, model: string) =>
  JSON.stringify({
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 0,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 },
  });

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Starts the server on 127.0.0.1, port 0. */
export async function startChatCompletionsServer(initial: ChatBehaviour[] = []): Promise<ChatCompletionsServer> {
  let behaviours = initial;
  let served = 0;
  const requests: ChatRequestSeen[] = [];
  const streams: HugeStream[] = [];
  const timers = new Set<NodeJS.Timeout>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"message":"not found"}}');
      return;
    }
    const text = await readBody(req);
    const body = JSON.parse(text) as ChatRequestSeen['body'];
    requests.push({ authorization: req.headers.authorization, body });
    const behaviour = behaviours[Math.min(served, behaviours.length - 1)] ?? { kind: 'answer', content: '{}' };
    served++;
    const model = body.model ?? 'model';
    const json = { 'content-type': 'application/json' };
    switch (behaviour.kind) {
      case 'answer':
        res.writeHead(200, json).end(completion(behaviour.content, model));
        return;
      case 'raw':
        res.writeHead(200, json).end(behaviour.body);
        return;
      case 'huge': {
        const chunk = Buffer.alloc(64 * 1024, 'x');
        let resolveOver = (): void => undefined;
        const stream: HugeStream = {
          written: 0,
          ended: false,
          over: new Promise<void>((resolve) => (resolveOver = resolve)),
        };
        streams.push(stream);
        res.on('close', resolveOver);
        res.writeHead(behaviour.status, json);
        while (stream.written < behaviour.bytes && !res.destroyed) {
          const part = chunk.subarray(0, Math.min(chunk.length, behaviour.bytes - stream.written));
          stream.written += part.length;
          if (!res.write(part)) {
            await new Promise<void>((resolve) => {
              const done = (): void => {
                res.off('drain', done);
                res.off('close', done);
                resolve();
              };
              res.on('drain', done);
              res.on('close', done);
            });
          }
        }
        if (!res.destroyed) {
          stream.ended = true;
          res.end();
        }
        return;
      }
      case 'status':
        res.writeHead(behaviour.status, { ...json, ...behaviour.headers }).end(behaviour.body);
        return;
      case 'slow': {
        const timer = setTimeout(() => {
          timers.delete(timer);
          if (!res.destroyed) res.writeHead(200, json).end(completion(behaviour.content, model));
        }, behaviour.ms);
        timers.add(timer);
        return;
      }
      case 'no-json-schema':
        if (body.response_format?.type === 'json_schema') {
          res.writeHead(400, json).end(
            JSON.stringify({
              error: { message: "Invalid value for 'response_format.type': json_schema is not supported" },
            }),
          );
          return;
        }
        res.writeHead(200, json).end(completion(behaviour.content, model));
        return;
    }
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    streams,
    script(next) {
      behaviours = next;
      served = 0;
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
