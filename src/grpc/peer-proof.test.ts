import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { newChallenge, ProofSigner, verifyPeer } from './peer-proof.js';

function countingLogger(): Logger & { warnings: number } {
  const logger = {
    warnings: 0,
    debug() {},
    info() {},
    warn() {
      logger.warnings += 1;
    },
    error() {},
    child: () => logger,
  };
  return logger;
}

describe('peer proof', () => {
  const token = 'cluster-token';

  it('proves its own identity, and the proof checks out only with the token', async () => {
    const signer = new ProofSigner(token, 'agent', 'node-1', () => '10.0.0.1:7070', countingLogger());
    const challenge = newChallenge('node-1', '10.0.0.1:7070');
    await verifyPeer(token, 'agent', challenge, (c) => Promise.resolve(signer.sign(c, 'peer')));
    await assert.rejects(
      verifyPeer('another-token', 'agent', challenge, (c) => Promise.resolve(signer.sign(c, 'peer'))),
      /not verified: its proof does not match/,
    );
  });

  it('refuses an oversized id or address before anything else (Prove carries no token)', () => {
    const logger = countingLogger();
    const signer = new ProofSigner(token, 'agent', 'node-1', () => '10.0.0.1:7070', logger);
    for (const challenge of [newChallenge('x'.repeat(300), '10.0.0.1:7070'), newChallenge('node-1', 'a'.repeat(600))]) {
      assert.throws(
        () => signer.sign(challenge, 'peer'),
        (err: unknown) => isPlatformError(err) && err.code === 'BAD_REQUEST',
      );
    }
    assert.equal(logger.warnings, 0);
  });

  it('logs each claimed identity once, and remembers a bounded number of them', () => {
    const logger = countingLogger();
    const signer = new ProofSigner(token, 'agent', 'node-1', () => '10.0.0.1:7070', logger);
    const refuse = (id: string) =>
      assert.throws(() => signer.sign(newChallenge(id, '10.9.9.9:1'), 'peer'), /not rogue|is node-1 at/);
    refuse('rogue');
    refuse('rogue');
    assert.equal(logger.warnings, 1);
    for (let i = 0; i < 1000; i += 1) refuse(`rogue-${i}`);
    assert.equal(logger.warnings, 1001);
    const remembered = (signer as unknown as { warned: Set<string> }).warned.size;
    assert.ok(remembered <= 64, `remembers ${remembered} identities`);
  });
});
