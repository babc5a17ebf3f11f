import type { Agent } from 'node:http';

export interface Hit {
  status: number;
  ms: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

export function post(agent: Agent, url: URL, body: string): Promise<Hit>;
