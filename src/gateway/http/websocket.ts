// WebSocket support for the gateway's routes (`logs/ws`, a run's live view): registered once on the server, since
// each registration of `@fastify/websocket` listens to the HTTP server's upgrades on its own.
import fastifyWebsocket from '@fastify/websocket';
import type { FastifyInstance } from 'fastify';
import { websocketSubprotocols } from './api-keys.js';

export async function websocketSupport(app: FastifyInstance): Promise<void> {
  await app.register(fastifyWebsocket, {
    options: {
      // Frames from clients are ignored: they need not be large.
      maxPayload: 4096,
      // The answer names the first of the client's subprotocols the gateway speaks; the key a browser sends as
      // `bearer.KEY` is never echoed.
      handleProtocols: (protocols) => websocketSubprotocols.find((p) => protocols.has(p)) ?? false,
    },
  });
}
