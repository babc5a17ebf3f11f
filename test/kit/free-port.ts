// Test kit: a free loopback port for servers the tests start (redis-server, PostgreSQL, MariaDB, savassan).
import { createServer } from 'node:net';

/**
 * A loopback TCP port that nothing listens on right now (the OS picks it). Another process can take it before the
 * caller binds it, so callers retry with a fresh port when the bind fails.
 */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}
