import { lookup as dnsLookup } from 'node:dns';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { PlatformError } from '../core/errors.js';
import { parseDestination } from '../core/function-config.js';
import { mayConnect } from '../core/net-ranges.js';
import type { SubmitOptions } from './async-invocations.js';

/** Why a record goes to a destination, as Lambda names it. */
export type DestinationCondition = 'Success' | 'RetriesExhausted' | 'EventAgeExceeded';

/** What a destination is sent: Lambda's asynchronous invocation record. */
export interface DestinationRecord {
  version: '1.0';
  timestamp: string;
  requestContext: {
    requestId: string;
    functionArn: string;
    condition: DestinationCondition;
    approximateInvokeCount: number;
  };
  requestPayload: unknown;
  responseContext: { statusCode: number; executedVersion: string; functionError?: string };
  responsePayload: unknown;
}

/**
 * Destination functions invoked one after another (A's record to B, B's to C...) stop here, as Lambda stops a
 * recursive loop: a chain that comes back to where it started would otherwise run forever.
 */
export const maxDestinationDepth = 16;

export interface DestinationsOptions {
  /** Queues an asynchronous invocation of a destination function. */
  submit: (functionName: string, eventJson: string, options: SubmitOptions) => Promise<unknown>;
  /** Sends a message to a named queue; absent where queues are not available. */
  sendToQueue?: ((queue: string, body: string) => Promise<unknown>) | undefined;
  /** How long a webhook may take to answer (default 10 s). */
  webhookTimeoutMs?: number | undefined;
  /**
   * The operator lets webhooks reach the host's own loopback addresses, where a function's `allowNet` lists them
   * (`start --allow-loopback-webhooks`). Default false: never.
   */
  allowHostLoopback?: boolean | undefined;
}

/**
 * Delivers the records of asynchronous invocations to their destinations: another function (queued as its own
 * asynchronous invocation, deduplicated by the source event and condition, so a redelivered event does not send
 * twice), a queue, or a webhook (POSTed as JSON; any 2xx answer is delivery). A webhook is reached only at an
 * address the function itself may reach: a private, loopback or link-local address only where the function's
 * `allowNet` lists it, checked on the address connected to (no second lookup to rebind). `deliver` rejects with a
 * PlatformError saying why a delivery failed.
 */
export class Destinations {
  readonly #options: DestinationsOptions;

  constructor(options: DestinationsOptions) {
    this.#options = options;
  }

  async deliver(
    destination: string,
    record: DestinationRecord,
    source: { functionName: string; eventId: string; allowNet: readonly string[]; depth: number },
  ): Promise<void> {
    const target = parseDestination(destination);
    const body = JSON.stringify(record);
    switch (target.kind) {
      case 'function':
        if (source.depth + 1 > maxDestinationDepth) {
          throw new PlatformError(
            'CONFLICT',
            `${maxDestinationDepth} destination functions in a row: a loop? (${source.functionName} → ${target.name})`,
          );
        }
        await this.#options.submit(target.name, body, {
          source: `destination:${source.functionName}`,
          idempotencyKey: `destination:${source.eventId}:${record.requestContext.condition}`,
          depth: source.depth + 1,
        });
        return;
      case 'queue':
        if (this.#options.sendToQueue === undefined) {
          throw new PlatformError('UNAVAILABLE', `queue ${target.name} cannot be reached from here`);
        }
        await this.#options.sendToQueue(target.name, body);
        return;
      case 'webhook':
        await this.#post(target.url, body, source);
    }
  }

  #post(url: URL, body: string, source: { eventId: string; allowNet: readonly string[] }): Promise<void> {
    const timeoutMs = this.#options.webhookTimeoutMs ?? 10_000;
    // An address in the URL is connected to without a lookup: judge it here.
    const literal = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const judge = { hostLoopback: this.#options.allowHostLoopback === true };
    if (isIP(literal) !== 0 && !mayConnect(literal, source.allowNet, judge)) {
      return Promise.reject(refusedAddress(url, [literal]));
    }
    const checkedLookup: LookupFunction = (hostname, options, callback) => {
      dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
        if (err !== null) return callback(err, '', 0);
        const allowed = addresses.find((entry) => mayConnect(entry.address, source.allowNet, judge));
        if (allowed === undefined)
          return callback(
            refusedAddress(
              url,
              addresses.map((a) => a.address),
            ),
            '',
            0,
          );
        if (options.all === true) callback(null, [allowed]);
        else callback(null, allowed.address, allowed.family);
      });
    };
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<void>((resolve, reject) => {
      const req = send(
        url,
        {
          method: 'POST',
          lookup: checkedLookup,
          // A fresh connection each time: a pooled one was checked for another function's allowNet.
          agent: false,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            'user-agent': 'savassan-destination',
            'x-savassan-invocation-id': source.eventId,
          },
        },
        (res) => {
          // The status is the answer: the body is not read (an endless one would hold the connection).
          res.destroy();
          clearTimeout(deadline);
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve();
          else reject(new PlatformError('UNAVAILABLE', `webhook ${url.host} answered ${status}`));
        },
      );
      // The whole exchange, not each idle gap: a server that trickles its answer does not hold a dispatcher slot.
      const deadline = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      req.on('error', (err) => {
        clearTimeout(deadline);
        reject(
          err instanceof PlatformError
            ? err
            : new PlatformError('UNAVAILABLE', `webhook ${url.host} failed: ${err.message}`, { cause: err }),
        );
      });
      req.end(body);
    });
  }
}

function refusedAddress(url: URL, addresses: string[]): PlatformError {
  return new PlatformError(
    'INVALID_CONFIG',
    `webhook ${url.host} is at ${addresses.join(', ')}, which the function may not reach (a private address ` +
      'needs --allow-net)',
  );
}
