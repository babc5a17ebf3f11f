// How a cluster member proves, before anyone sends it the cluster token, that it holds the token and is the member
// that etcd names. Entries in etcd are not trusted (anyone who can write etcd can add one): a caller that read an
// id and an address there dials the address, sends a fresh nonce with the id and the address it dialed (no token),
// and sends the token only once the answer is HMAC-SHA256(token, message(role, nonce, id, address)). The member
// signs only its own id and the address it advertises, so an entry with another address that relays to a real
// member gets a proof for the wrong address and fails.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { PlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';

/**
 * Who proves: an Agent (dialed by gateways and managers), a gateway's routing server (dialed by the leader), or a
 * manager's Leader service (dialed by gateways and the other managers).
 */
export type ProofRole = 'agent' | 'gateway' | 'manager';

/** What a caller asks a member to sign. */
export interface ProofChallenge {
  nonce: Buffer;
  /** The member id the caller read from etcd. */
  memberId: string;
  /** The address the caller dialed, as read from etcd. */
  address: string;
}

const nonceBytes = 32;
/** Longest member id and address a challenge may name: `Prove` needs no token, so its input is bounded first. */
const maxMemberIdBytes = 256;
const maxAddressBytes = 512;
/** Claimed identities remembered so each is logged once; beyond this, the set starts over. */
const maxWarned = 64;

function proofOf(token: string, role: ProofRole, challenge: ProofChallenge): Buffer {
  // JSON keeps the fields apart: no id or address can shift bytes into its neighbour.
  const message = JSON.stringify([
    'savassan-peer-proof-v1',
    role,
    challenge.nonce.toString('base64'),
    challenge.memberId,
    challenge.address,
  ]);
  return createHmac('sha256', token).update(message).digest();
}

/** The member's side: signs challenges for its own id and advertised address, refuses any other. */
export class ProofSigner {
  private readonly warned = new Set<string>();

  constructor(
    private readonly token: string,
    private readonly role: ProofRole,
    private readonly memberId: string,
    /** The address others dial (read when a challenge comes: it may be known only once the server is bound). */
    private readonly advertised: () => string,
    private readonly logger: Logger,
  ) {}

  /** The proof for `challenge`; UNAUTHORIZED when it names another member or address, BAD_REQUEST when malformed. */
  sign(challenge: ProofChallenge, peer: string): Buffer {
    if (challenge.nonce.length !== nonceBytes) {
      throw new PlatformError('BAD_REQUEST', `Prove needs a nonce of ${nonceBytes} bytes`);
    }
    if (
      Buffer.byteLength(challenge.memberId) > maxMemberIdBytes ||
      Buffer.byteLength(challenge.address) > maxAddressBytes
    ) {
      throw new PlatformError(
        'BAD_REQUEST',
        `Prove takes a member id of at most ${maxMemberIdBytes} bytes and an address of at most ${maxAddressBytes}`,
      );
    }
    const address = this.advertised();
    if (challenge.memberId !== this.memberId || challenge.address !== address) {
      const key = `${challenge.memberId}\n${challenge.address}`;
      // Logged once per claimed identity: a relay retries every few seconds.
      if (!this.warned.has(key)) {
        if (this.warned.size >= maxWarned) this.warned.clear();
        this.warned.add(key);
        this.logger.warn(
          { peer, claimedId: challenge.memberId, claimedAddress: challenge.address, address },
          `refused to prove another ${this.role}'s identity: an etcd entry may point at a relay to this ${this.role}`,
        );
      }
      throw new PlatformError(
        'UNAUTHORIZED',
        `this ${this.role} is ${this.memberId} at ${address}, not ${challenge.memberId} at ${challenge.address}`,
      );
    }
    return proofOf(this.token, this.role, challenge);
  }
}

/** The caller's side: a fresh challenge for the member etcd names. */
export function newChallenge(memberId: string, address: string): ProofChallenge {
  return { nonce: randomBytes(nonceBytes), memberId, address };
}

/**
 * Ask the member for its proof (through `prove`, a call that carries no token) and check it. Rejects with
 * UNAVAILABLE naming the member when the answer is missing or wrong: the caller must not send it the token.
 */
export async function verifyPeer(
  token: string,
  role: ProofRole,
  challenge: ProofChallenge,
  prove: (challenge: ProofChallenge) => Promise<Buffer>,
): Promise<void> {
  const who = `${role} ${challenge.memberId} at ${challenge.address}`;
  let proof: Buffer;
  try {
    proof = await prove(challenge);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new PlatformError(
      'UNAVAILABLE',
      `${who} is not verified: it did not prove it holds the cluster token (${reason})`,
      {
        cause: err,
      },
    );
  }
  const expected = proofOf(token, role, challenge);
  if (proof.length !== expected.length || !timingSafeEqual(proof, expected)) {
    throw new PlatformError(
      'UNAVAILABLE',
      `${who} is not verified: its proof does not match the cluster token (not a member of this cluster)`,
    );
  }
}
