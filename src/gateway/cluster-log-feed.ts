import type { Logger } from '../core/logger.js';
import type { SandboxLogLine } from '../core/ports/agent-api.js';
import type { LogFilter, LogSubscription } from './grpc-agent-client.js';
import type { LogFeed } from './live-logs.js';

/** An Agent whose live output can be followed (a `GrpcAgentClient`). */
export interface LogStreamingAgent {
  readonly nodeId: string;
  streamLogs(filter: LogFilter, listener: (line: SandboxLogLine) => void): Promise<LogSubscription>;
}

export interface ClusterLogFeedOptions {
  /** The cluster's live Agents, now. */
  agents: () => LogStreamingAgent[];
  logger: Logger;
  /** The first wait before a broken stream is opened again; it doubles up to `maxBackoffMs` (default 200 ms). */
  backoffMs?: number | undefined;
  /** Default 5 s. */
  maxBackoffMs?: number | undefined;
  /** `open` waits this long at most for the Agents' streams (default 3 s); a slower one joins when it can. */
  openWaitMs?: number | undefined;
}

export interface ClusterLogFeed extends LogFeed {
  /** The membership changed: follow the Agents that joined, stop following those that left. */
  refresh(): void;
}

interface Follow {
  agent: LogStreamingAgent;
  subscription: LogSubscription | null;
  stopped: boolean;
  timer: NodeJS.Timeout | undefined;
  /** Resolves once the first attempt to subscribe settled. */
  first: Promise<void>;
}

/**
 * Cluster mode: one `StreamLogs` stream per live Agent while the feed is open. A stream that breaks while its
 * Agent is still a member is opened again after a backoff; lines written while it was down are lost.
 */
export function clusterLogFeed(options: ClusterLogFeedOptions): ClusterLogFeed {
  const { logger } = options;
  const backoffMs = options.backoffMs ?? 200;
  const maxBackoffMs = options.maxBackoffMs ?? 5000;
  const openWaitMs = options.openWaitMs ?? 3000;
  const follows = new Map<string, Follow>();
  let onChunk: ((chunk: SandboxLogLine) => void) | null = null;

  const follow = (agent: LogStreamingAgent): Follow => {
    let settleFirst = (): void => {};
    const state: Follow = {
      agent,
      subscription: null,
      stopped: false,
      timer: undefined,
      first: new Promise<void>((resolve) => (settleFirst = resolve)),
    };
    let delay = backoffMs;
    const retry = (): void => {
      if (state.stopped) return;
      state.timer = setTimeout(connect, delay);
      state.timer.unref();
      delay = Math.min(delay * 2, maxBackoffMs);
    };
    const connect = (): void => {
      state.timer = undefined;
      if (state.stopped) return;
      agent
        .streamLogs({}, (line) => onChunk?.(line))
        .then(
          (subscription) => {
            settleFirst();
            if (state.stopped) {
              subscription.close();
              return;
            }
            state.subscription = subscription;
            delay = backoffMs;
            void subscription.ended.then((error) => {
              state.subscription = null;
              if (state.stopped) return;
              logger.warn({ err: error, nodeId: agent.nodeId }, 'a live log stream from an agent ended; reopening it');
              retry();
            });
          },
          (err: unknown) => {
            settleFirst();
            if (state.stopped) return;
            logger.warn({ err, nodeId: agent.nodeId }, 'could not follow the logs of an agent; retrying');
            retry();
          },
        );
    };
    connect();
    return state;
  };

  const stop = (state: Follow): void => {
    state.stopped = true;
    clearTimeout(state.timer);
    state.subscription?.close();
    state.subscription = null;
  };

  /** Follow exactly the Agents listed now (a rejoined node under a new client is followed afresh). */
  const sync = (): Follow[] => {
    const current = new Map(options.agents().map((agent) => [agent.nodeId, agent]));
    for (const [nodeId, state] of follows) {
      if (current.get(nodeId) !== state.agent) {
        stop(state);
        follows.delete(nodeId);
      }
    }
    const started: Follow[] = [];
    for (const [nodeId, agent] of current) {
      if (!follows.has(nodeId)) {
        const state = follow(agent);
        follows.set(nodeId, state);
        started.push(state);
      }
    }
    return started;
  };

  return {
    async open(listener) {
      onChunk = listener;
      const started = sync();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(started.map((state) => state.first)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, openWaitMs);
          timer.unref();
        }),
      ]);
      clearTimeout(timer);
      return () => {
        onChunk = null;
        for (const state of follows.values()) stop(state);
        follows.clear();
        return Promise.resolve();
      };
    },
    refresh() {
      if (onChunk !== null) sync();
    },
  };
}
