import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface TcpRelay {
  /** `127.0.0.1:port`, where the relay listens. */
  address: string;
  port: number;
  /** Stops listening and cuts every relayed connection. */
  close(): void;
}

/**
 * A TCP relay on 127.0.0.1 to `target` (`host:port`): what a rogue etcd entry would point at to borrow a real
 * member's answers. `onData` sees every chunk callers send through it.
 */
export async function startTcpRelay(target: string, onData?: (chunk: Buffer) => void): Promise<TcpRelay> {
  const [host = '', port = ''] = target.split(':');
  const sockets = new Set<Socket>();
  const relay = createServer((inbound) => {
    const outbound = connect(Number(port), host);
    sockets.add(inbound).add(outbound);
    if (onData !== undefined) inbound.on('data', onData);
    inbound.pipe(outbound).pipe(inbound);
    const end = (): void => {
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on('error', end).on('close', end);
    outbound.on('error', end).on('close', end);
  });
  relay.listen(0, '127.0.0.1');
  await once(relay, 'listening');
  const listening = (relay.address() as AddressInfo).port;
  return {
    address: `127.0.0.1:${listening}`,
    port: listening,
    close: () => {
      for (const socket of sockets) socket.destroy();
      relay.close();
    },
  };
}
