import { Metadata, credentials, status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { PlatformError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import type { AgentApi, InvokeOutcome, InvokeRequest, SandboxInfo, SandboxSpec } from '../core/ports/agent-api.js';
import type { NodeInfo } from '../core/ports/cluster.js';
import type { InstanceRef } from '../core/types.js';
import { AgentClient, type StreamLogsResponse } from '../gen/savassan/agent/v1/agent.js';
import {
  agentServiceDefinition,
  instanceRefFromProto,
  logFilterToProto,
  logLineFromProto,
  nodeInfoFromProto,
  sandboxInfoFromProto,
  sandboxSpecToProto,
  type LogFilter,
  type StreamedLogLine,
} from '../grpc/agent-codec.js';
import { platformErrorFromGrpc } from '../grpc/grpc-errors.js';
import { bearerMetadata, callUnary, grpcChannelOptions, type UnaryMethod } from '../grpc/grpc-transport.js';
import { newChallenge, verifyPeer } from '../grpc/peer-proof.js';
import { InvokeStreamClient } from './invoke-stream-client.js';

export type { LogFilter, StreamedLogLine } from '../grpc/agent-codec.js';

export interface GrpcAgentClientOptions {
  /** The node the Agent runs on, as pool entries name it. */
  nodeId: string;
  /** The Agent's gRPC address: `host:port` or `unix:/path`. */
  address: string;
  /** The shared cluster token. */
  token: string;
  /** Added to the function timeout for an invocation's deadline: the Agent enforces the timeout itself. Default 5 s. */
  invokeMarginMs?: number | undefined;
  /** Deadline of CreateSandbox (code download, extraction, init). Default 30 s. */
  createDeadlineMs?: number | undefined;
  /** Deadline of the other calls. Default 10 s. */
  callDeadlineMs?: number | undefined;
  /** Where malformed or unexpected replies of the node are reported. */
  logger?: Logger | undefined;
}

/** A node that does not answer its proof within this long is not verified (it is asked again later). */
const proveDeadlineMs = 3000;

/** An open StreamLogs call. */
export interface LogSubscription {
  /**
   * Resolves when the stream is over: with null after close() or when the Agent ended it (shutdown), with the
   * PlatformError when it failed (connection lost: UNAVAILABLE).
   */
  readonly ended: Promise<PlatformError | null>;
  /** Cancel the stream. Idempotent. */
  close(): void;
}

/**
 * The Agent of another node, reached over gRPC (cluster mode). Failures the Agent reports keep their PlatformError
 * code; a node that cannot be reached, or does not answer within the deadline, is UNAVAILABLE naming the node and its
 * address. The constructor does no I/O: the connection opens on the first call. No call carries the cluster token
 * before the node has proved it holds it for this node id and address (`verify`, src/grpc/peer-proof.ts).
 */
export class GrpcAgentClient implements AgentApi {
  readonly nodeId: string;
  readonly address: string;
  private readonly token: string;
  private readonly peer: string;
  private readonly invokeMarginMs: number;
  private readonly createDeadlineMs: number;
  private readonly callDeadlineMs: number;
  private readonly client: AgentClient;
  private readonly streams = new Set<ClientReadableStream<StreamLogsResponse>>();
  private readonly invocations: InvokeStreamClient;
  private verified: Promise<void> | null = null;
  /** Set once the proof checked out: calls (invocations among them) then skip the await on `verified`. */
  private proven = false;
  private closed = false;

  constructor(options: GrpcAgentClientOptions) {
    this.nodeId = options.nodeId;
    this.address = options.address;
    this.token = options.token;
    this.peer = `agent ${options.nodeId} at ${options.address}`;
    this.invokeMarginMs = options.invokeMarginMs ?? 5000;
    this.createDeadlineMs = options.createDeadlineMs ?? 30_000;
    this.callDeadlineMs = options.callDeadlineMs ?? 10_000;
    this.client = new AgentClient(options.address, credentials.createInsecure(), grpcChannelOptions);
    const { path, requestSerialize, responseDeserialize } = agentServiceDefinition.invokeStream;
    this.invocations = new InvokeStreamClient({
      open: () =>
        this.client.makeBidiStreamRequest(path, requestSerialize, responseDeserialize, bearerMetadata(this.token)),
      peer: this.peer,
      logger: (options.logger ?? silentLogger).child({ component: 'agent-client', nodeId: options.nodeId }),
    });
  }

  /**
   * Check, once, that the node at this address holds the cluster token and is this node id (a Prove call without
   * the token). Rejects UNAVAILABLE when it is not; a failed check is tried again on the next call.
   */
  verify(): Promise<void> {
    this.assertOpen('Prove');
    this.verified ??= verifyPeer(this.token, 'agent', newChallenge(this.nodeId, this.address), async (challenge) => {
      const response = await callUnary(
        this.client.prove.bind(this.client),
        { nonce: challenge.nonce, nodeId: challenge.memberId, address: challenge.address },
        new Metadata(),
        { ...this.describe('Prove'), deadlineMs: Math.min(this.callDeadlineMs, proveDeadlineMs) },
      );
      return response.proof;
    }).then(
      () => {
        this.proven = true;
      },
      (err: unknown) => {
        this.verified = null;
        throw err;
      },
    );
    return this.verified;
  }

  async createSandbox(spec: SandboxSpec): Promise<InstanceRef> {
    const response = await this.call(
      'CreateSandbox',
      this.client.createSandbox.bind(this.client),
      { spec: sandboxSpecToProto(spec) },
      this.createDeadlineMs,
    );
    return instanceRefFromProto(response.instance);
  }

  /**
   * Run one invocation, as a message on the InvokeStream kept open to the node (see InvokeStreamClient): UNAVAILABLE
   * with `notDelivered` when it provably never reached the Agent, UNAVAILABLE without it when the node was lost
   * while it may have run.
   */
  async invoke(instanceId: string, request: InvokeRequest): Promise<InvokeOutcome> {
    this.assertOpen('Invoke');
    if (!this.proven) await this.verify();
    this.assertOpen('Invoke');
    return this.invocations.invoke(instanceId, request, request.timeoutMs + this.invokeMarginMs);
  }

  async destroySandbox(instanceId: string): Promise<void> {
    await this.call('DestroySandbox', this.client.destroySandbox.bind(this.client), { instanceId });
  }

  async listSandboxes(): Promise<SandboxInfo[]> {
    const response = await this.call('ListSandboxes', this.client.listSandboxes.bind(this.client), {});
    return response.sandboxes.map(sandboxInfoFromProto);
  }

  async getNodeInfo(): Promise<NodeInfo> {
    const response = await this.call('GetNodeInfo', this.client.getNodeInfo.bind(this.client), {});
    return nodeInfoFromProto(response.node);
  }

  /**
   * Follow the live output of the node's sandboxes that match `filter`. Resolves once the Agent has subscribed, so
   * every line written after that reaches `listener`; rejects when the stream cannot be opened.
   */
  async streamLogs(filter: LogFilter, listener: (line: StreamedLogLine) => void): Promise<LogSubscription> {
    await this.verify();
    this.assertOpen('StreamLogs');
    const call = this.client.streamLogs(logFilterToProto(filter), bearerMetadata(this.token));
    this.streams.add(call);
    let cancelled = false;
    let settle: (result: PlatformError | null) => void = () => {};
    const ended = new Promise<PlatformError | null>((resolve) => {
      settle = (result) => {
        this.streams.delete(call);
        resolve(result);
      };
    });
    const close = (): void => {
      cancelled = true;
      call.cancel();
    };
    call.on('data', (message: StreamLogsResponse) => {
      try {
        listener(logLineFromProto(message));
      } catch (err) {
        settle(PlatformError.from(err));
        close();
      }
    });
    call.on('error', (err: ServiceError) => {
      settle(
        cancelled && err.code === status.CANCELLED ? null : platformErrorFromGrpc(err, this.describe('StreamLogs')),
      );
    });
    call.on('end', () => settle(null));
    await new Promise<void>((resolve, reject) => {
      call.once('metadata', () => resolve());
      void ended.then((error) => (error === null ? resolve() : reject(error)));
    });
    return { ended, close };
  }

  /** Close the connection; open streams are cancelled (invocations in flight reject UNAVAILABLE), later calls reject UNAVAILABLE. Idempotent. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      for (const call of this.streams) call.cancel();
      this.invocations.close();
      this.client.close();
    }
    return Promise.resolve();
  }

  private describe(method: string, deadlineMs?: number): { peer: string; method: string; deadlineMs?: number } {
    return deadlineMs === undefined ? { peer: this.peer, method } : { peer: this.peer, method, deadlineMs };
  }

  private assertOpen(method: string): void {
    if (this.closed)
      throw new PlatformError('UNAVAILABLE', `cannot call ${method} on ${this.peer}: the client is closed`);
  }

  private async call<Req, Res>(
    method: string,
    unary: UnaryMethod<Req, Res>,
    request: Req,
    deadlineMs = this.callDeadlineMs,
  ): Promise<Res> {
    this.assertOpen(method);
    if (!this.proven) await this.verify();
    return callUnary(unary, request, bearerMetadata(this.token), { ...this.describe(method), deadlineMs });
  }
}
