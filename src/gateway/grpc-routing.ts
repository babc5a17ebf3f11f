import { Metadata, credentials } from '@grpc/grpc-js';
import { PlatformError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import type { RoutingTable } from '../core/ports/cluster.js';
import { trafficChanges } from '../core/routing-table.js';
import {
  RoutingClient,
  RoutingService,
  type RoutingServer,
  type RoutingTable as RoutingTableMessage,
} from '../gen/savassan/gateway/v1/routing.js';
import {
  CallGuard,
  bearerMetadata,
  callUnary,
  grpcChannelOptions,
  serveGrpc,
  type GrpcServerHandle,
} from '../grpc/grpc-transport.js';
import { ProofSigner, newChallenge, verifyPeer } from '../grpc/peer-proof.js';

function tableToProto(table: RoutingTable): RoutingTableMessage {
  return {
    version: table.version,
    agents: { ...table.agents },
    updatedAtMs: table.updatedAt,
    traffic: { ...table.traffic },
  };
}

function tableFromProto(table: RoutingTableMessage | undefined): RoutingTable {
  if (table === undefined) throw new PlatformError('BAD_REQUEST', 'PushRoutingTable without a table');
  const traffic = Object.keys(table.traffic).length === 0 ? {} : { traffic: { ...table.traffic } };
  return { version: table.version, agents: { ...table.agents }, updatedAt: table.updatedAtMs, ...traffic };
}

/** What a gateway answers a push. */
export interface PushResult {
  /** False when the gateway already holds a newer table (the pusher may be a stale leader). */
  accepted: boolean;
  /** The version the gateway holds after the push. */
  currentVersion: number;
}

export interface RoutingServerOptions {
  /** `host:port` (port 0 picks one) or `unix:/path`. */
  address: string;
  /** The gateway's id, as it registers in etcd: Prove signs only this one. */
  gatewayId: string;
  /** The address the leader dials, as registered; Prove signs only this one. Default: the bound one. */
  advertise?: string | undefined;
  /** The shared cluster token every push must present. */
  token: string;
  /** Called with each newer table, one at a time; a push is acknowledged once it returns. */
  onTable: (table: RoutingTable) => void | Promise<void>;
  /**
   * Called, before `onTable`, with the functions whose traffic the leader changed since the last table applied
   * (`trafficChanges`): the gateway drops what it cached about their versions. Not called when there are none.
   */
  onTrafficChange?: ((functionNames: string[]) => void) | undefined;
  /**
   * Called when the leader asks this gateway to leave (an upgrade retires it), on the tick after the call was
   * answered: the gateway leaves the registry, stops being ready, lets the requests under way finish, and stops.
   * Without it, Shutdown is refused (FAILED_PRECONDITION).
   */
  onShutdown?: ((reason: string) => void) | undefined;
  logger?: Logger | undefined;
  graceMs?: number | undefined;
}

/**
 * A gateway's end of the routing push (service savassan.gateway.v1.Routing): tables arrive from the control-plane
 * leader; only a version newer than the last one applied reaches `onTable`.
 */
export async function serveRouting(options: RoutingServerOptions): Promise<GrpcServerHandle> {
  const logger = (options.logger ?? silentLogger).child({ component: 'routing-grpc' });
  const guard = new CallGuard(options.token, logger);
  let bound = '';
  const signer = new ProofSigner(options.token, 'gateway', options.gatewayId, () => options.advertise ?? bound, logger);
  let currentVersion = 0;
  let applied: RoutingTable | null = null;
  // Pushes apply one after another, so versions only go up.
  let applying: Promise<unknown> = Promise.resolve();
  const apply = async (table: RoutingTable): Promise<PushResult> => {
    if (table.version < currentVersion) return { accepted: false, currentVersion };
    if (table.version > currentVersion) {
      const changed = trafficChanges(applied, table);
      if (changed.length > 0) options.onTrafficChange?.(changed);
      await options.onTable(table);
      currentVersion = table.version;
      applied = table;
    }
    return { accepted: true, currentVersion };
  };
  const service: RoutingServer = {
    pushRoutingTable: guard.unary('PushRoutingTable', (request) => {
      const table = tableFromProto(request.table);
      const result = applying.then(() => apply(table));
      applying = result.catch(() => undefined);
      return result;
    }),
    shutdown: guard.unary('Shutdown', (request) => {
      const { onShutdown } = options;
      if (onShutdown === undefined) {
        throw new PlatformError('CONFLICT', `gateway ${options.gatewayId} cannot be asked to shut down`);
      }
      logger.info({ reason: request.reason }, 'asked to shut down');
      // Answered first: the caller hears back before the gateway starts to leave.
      setImmediate(() => onShutdown(request.reason));
      return Promise.resolve({});
    }),
    prove: guard.withoutToken('Prove', (request, peer) =>
      Promise.resolve({
        proof: signer.sign({ nonce: request.nonce, memberId: request.gatewayId, address: request.address }, peer),
      }),
    ),
  };
  const handle = await serveGrpc(options.address, (server) => server.addService(RoutingService, service), {
    graceMs: options.graceMs,
  });
  bound = handle.address;
  return handle;
}

/** A gateway as registered in etcd: where the leader pushes. */
export interface GatewayAddress {
  gatewayId: string;
  address: string;
}

/**
 * Push `table` to the gateway at `address` (one short-lived connection), once it has proved it holds the cluster
 * token for this id and address: an unverified gateway never receives the token. Rejects with a PlatformError
 * (UNAVAILABLE when the gateway is not verified).
 */
export async function pushRoutingTable(
  gateway: GatewayAddress,
  token: string,
  table: RoutingTable,
  options: { deadlineMs?: number | undefined } = {},
): Promise<PushResult> {
  return withVerifiedGateway(gateway, token, options.deadlineMs ?? 5000, (client, call) =>
    callUnary(client.pushRoutingTable.bind(client), { table: tableToProto(table) }, bearerMetadata(token), {
      ...call,
      method: 'PushRoutingTable',
    }),
  );
}

/**
 * Ask the gateway at `address` to leave (an upgrade retires it), once it has proved it holds the cluster token for
 * this id and address. Resolves when the gateway answered, before it stops; rejects with a PlatformError
 * (UNAVAILABLE when the gateway is not verified).
 */
export async function shutdownGateway(
  gateway: GatewayAddress,
  token: string,
  reason: string,
  options: { deadlineMs?: number | undefined } = {},
): Promise<void> {
  await withVerifiedGateway(gateway, token, options.deadlineMs ?? 5000, (client, call) =>
    callUnary(client.shutdown.bind(client), { reason }, bearerMetadata(token), { ...call, method: 'Shutdown' }),
  );
}

/** Run `body` on one short-lived connection to the gateway, once it proved its identity (Prove, without the token). */
async function withVerifiedGateway<T>(
  gateway: GatewayAddress,
  token: string,
  deadlineMs: number,
  body: (client: RoutingClient, call: { peer: string; deadlineMs: number }) => Promise<T>,
): Promise<T> {
  const { address } = gateway;
  const peer = `gateway ${gateway.gatewayId} at ${address}`;
  const client = new RoutingClient(address, credentials.createInsecure(), grpcChannelOptions);
  try {
    await verifyPeer(token, 'gateway', newChallenge(gateway.gatewayId, address), async (challenge) => {
      const response = await callUnary(
        client.prove.bind(client),
        { nonce: challenge.nonce, gatewayId: challenge.memberId, address: challenge.address },
        new Metadata(),
        { peer, method: 'Prove', deadlineMs },
      );
      return response.proof;
    });
    return await body(client, { peer, deadlineMs });
  } finally {
    client.close();
  }
}
