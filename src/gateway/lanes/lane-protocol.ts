// Messages between the gateway's main event loop and its lanes (worker threads that serve the invoke route on the
// same listening socket). Both ends are this process's own code, so they are typed, not validated.

/**
 * The header in which a lane passes its client's address to the main loop with a request (the main loop's own
 * socket is a Unix socket, without one). The main loop trusts it only on that socket; a lane replaces any a client
 * sent.
 */
export const clientAddressHeader = 'x-savassan-client-address';

/** What a lane is started with (its `workerData`). The API keys stay in this process's memory. */
export interface LaneSettings {
  /** 1, 2...: the main event loop is lane 0. */
  lane: number;
  /** The listening socket's descriptor in this process, which the lane duplicates for itself. */
  listenFd: number;
  /** The main loop's private socket for requests other than plain invocations. */
  apiSocket: string;
  apiKeys: readonly string[];
  /** Requests for `{name}.{urlDomain}` are function URLs: passed to the main loop whatever their path. */
  urlDomain: string | undefined;
  requestTimeoutMs: number;
  ready: boolean;
}

/** Lane → main. */
export type LaneMessage =
  | { kind: 'listening' }
  | { kind: 'failed'; message: string }
  /** Run an invocation; answered by an `answer` of the same id. */
  | {
      kind: 'invoke';
      id: number;
      name: string;
      event: Uint8Array;
      url: string | undefined;
      /** The version or alias the request's URL names (none: `live`). */
      qualifier: string | undefined;
    }
  /** The client of invocation `id` went away before its answer. */
  | { kind: 'gone'; id: number }
  /** The value of a header of invocation `id`'s request, as asked by a `header` message. */
  | { kind: 'header'; id: number; value: string | undefined }
  /** Drained after `close`: every connection of the lane is closed. */
  | { kind: 'closed' };

/** Main → lane. */
export type HostMessage =
  | { kind: 'answer'; id: number; status: number; headers: Record<string, string>; body: string | Uint8Array }
  /**
   * Asks for a header of invocation `id`'s request: its alias picks a version by that header's value. Asked rather
   * than sent with every invocation, which would copy all headers between threads for the few sticky aliases.
   */
  | { kind: 'header'; id: number; name: string }
  | { kind: 'ready'; ready: boolean }
  /** Stop accepting, finish what is in flight, close every connection, then say `closed`. */
  | { kind: 'close' };
