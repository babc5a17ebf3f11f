import { credentials } from '@grpc/grpc-js';
import { PlatformError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import type { RoutingTable } from '../core/ports/cluster.js';
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

function tableToProto(table: RoutingTable): RoutingTableMessage {
  return { version: table.version, agents: { ...table.agents }, updatedAtMs: table.updatedAt };
}

function tableFromProto(table: RoutingTableMessage | undefined): RoutingTable {
  if (table === undefined) throw new PlatformError('BAD_REQUEST', 'PushRoutingTable without a table');
  return { version: table.version, agents: { ...table.agents }, updatedAt: table.updatedAtMs };
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
  /** The shared cluster token every push must present. */
  token: string;
  /** Called with each newer table, one at a time; a push is acknowledged once it returns. */
  onTable: (table: RoutingTable) => void | Promise<void>;
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
  let currentVersion = 0;
  // Pushes apply one after another, so versions only go up.
  let applying: Promise<unknown> = Promise.resolve();
  const apply = async (table: RoutingTable): Promise<PushResult> => {
    if (table.version < currentVersion) return { accepted: false, currentVersion };
    if (table.version > currentVersion) {
      await options.onTable(table);
      currentVersion = table.version;
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
  };
  return serveGrpc(options.address, (server) => server.addService(RoutingService, service), {
    graceMs: options.graceMs,
  });
}

/** Push `table` to the gateway at `address` (one short-lived connection). Rejects with a PlatformError. */
export async function pushRoutingTable(
  address: string,
  token: string,
  table: RoutingTable,
  options: { deadlineMs?: number | undefined } = {},
): Promise<PushResult> {
  const client = new RoutingClient(address, credentials.createInsecure(), grpcChannelOptions);
  try {
    return await callUnary(
      client.pushRoutingTable.bind(client),
      { table: tableToProto(table) },
      bearerMetadata(token),
      { peer: `gateway at ${address}`, method: 'PushRoutingTable', deadlineMs: options.deadlineMs ?? 5000 },
    );
  } finally {
    client.close();
  }
}
