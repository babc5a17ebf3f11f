import { Metadata, type ServerWritableStream } from '@grpc/grpc-js';
import { silentLogger, type Logger } from '../core/logger.js';
import type { AgentApi, SandboxLogLine } from '../core/ports/agent-api.js';
import type { NodeInfo } from '../core/ports/cluster.js';
import type { AgentServer, StreamLogsRequest, StreamLogsResponse } from '../gen/savassan/agent/v1/agent.js';
import {
  agentServiceDefinition,
  instanceRefToProto,
  logFilterFromProto,
  logFilterMatches,
  logLineToProto,
  nodeInfoToProto,
  sandboxInfoToProto,
  sandboxSpecFromProto,
} from '../grpc/agent-codec.js';
import { CallGuard, serveGrpc, type GrpcServerHandle } from '../grpc/grpc-transport.js';
import { ProofSigner } from '../grpc/peer-proof.js';
import type { Agent } from './agent.js';
import { InvokeStreamService, type InvokeStreamCall } from './invoke-stream-service.js';

export interface AgentServerOptions {
  /** `host:port` (port 0 picks one) or `unix:/path`. */
  address: string;
  /** The shared cluster token every call must present as `authorization: Bearer <token>`. */
  token: string;
  /** The address others dial, as the node publishes it in etcd; Prove signs only this one. Default: the bound one. */
  advertise?: string | undefined;
  /** What GetNodeInfo answers (capacity and sandboxes change, so it is asked each time). */
  nodeInfo: () => Promise<NodeInfo>;
  logger?: Logger | undefined;
  /** How long close() lets calls in flight finish before cancelling them. Default 5 s. */
  graceMs?: number | undefined;
  /** Output buffered for one slow log reader before its lines are dropped (and counted). Default 1 MiB. */
  logStreamBufferBytes?: number | undefined;
}

/** What the server needs of the Agent: the port plus its live log hook. */
export type ServedAgent = AgentApi & Pick<Agent, 'onLog'>;

/** The handlers of the Agent service; InvokeStream's messages are bytes each side encodes itself (agent-codec). */
type AgentImplementation = {
  [Method in keyof typeof agentServiceDefinition]: Method extends 'invokeStream'
    ? (call: InvokeStreamCall) => void
    : AgentServer[Method];
};

/**
 * Serve an Agent over gRPC (service savassan.agent.v1.Agent, proto/savassan/agent/v1/agent.proto) for the Gateways
 * and Managers of the cluster. Closing the server ends open log streams and leaves the Agent running.
 */
export async function serveAgent(agent: ServedAgent, options: AgentServerOptions): Promise<GrpcServerHandle> {
  const logger = (options.logger ?? silentLogger).child({ component: 'agent-grpc', nodeId: agent.nodeId });
  const guard = new CallGuard(options.token, logger);
  const bufferBytes = options.logStreamBufferBytes ?? 1024 * 1024;
  const streams = new Set<ServerWritableStream<StreamLogsRequest, StreamLogsResponse>>();
  let bound = '';
  const signer = new ProofSigner(options.token, 'agent', agent.nodeId, () => options.advertise ?? bound, logger);
  const invocations = new InvokeStreamService(agent, guard, logger);

  const streamLogs: AgentServer['streamLogs'] = (call) => {
    if (!guard.authorized(call.metadata)) {
      call.emit('error', guard.unauthenticated('StreamLogs', call.getPeer()));
      return;
    }
    const filter = logFilterFromProto(call.request);
    let dropped = 0;
    let buffered = 0;
    const unsubscribe = agent.onLog((line: SandboxLogLine) => {
      if (!logFilterMatches(filter, line) || call.writableEnded) return;
      // A reader that does not keep up loses lines (counted in the next one it gets), never the Agent's memory.
      if (buffered > bufferBytes) {
        dropped += 1;
        return;
      }
      const bytes = Buffer.byteLength(line.text) + 128;
      buffered += bytes;
      call.write(logLineToProto(line, dropped), () => {
        buffered -= bytes;
      });
      dropped = 0;
    });
    const stop = (): void => {
      unsubscribe();
      streams.delete(call);
    };
    call.on('cancelled', stop);
    call.on('close', stop);
    call.on('finish', stop);
    call.on('error', stop);
    streams.add(call);
    // Headers tell the client the subscription is in place: lines from now on reach it.
    call.sendMetadata(new Metadata());
  };

  const service: AgentImplementation = {
    createSandbox: guard.unary('CreateSandbox', async (request) => ({
      instance: instanceRefToProto(await agent.createSandbox(sandboxSpecFromProto(request.spec))),
    })),
    invokeStream: invocations.handle,
    destroySandbox: guard.unary('DestroySandbox', async (request) => {
      await agent.destroySandbox(request.instanceId);
      return {};
    }),
    listSandboxes: guard.unary('ListSandboxes', async () => ({
      sandboxes: (await agent.listSandboxes()).map(sandboxInfoToProto),
    })),
    streamLogs,
    getNodeInfo: guard.unary('GetNodeInfo', async () => ({ node: nodeInfoToProto(await options.nodeInfo()) })),
    prove: guard.withoutToken('Prove', (request, peer) =>
      Promise.resolve({
        proof: signer.sign({ nonce: request.nonce, memberId: request.nodeId, address: request.address }, peer),
      }),
    ),
  };

  const handle = await serveGrpc(options.address, (server) => server.addService(agentServiceDefinition, service), {
    graceMs: options.graceMs,
    beforeClose: () => {
      for (const call of streams) call.end();
      invocations.drain();
    },
  });
  bound = handle.address;
  logger.info({ address: handle.address }, 'agent gRPC server listening');
  return handle;
}
