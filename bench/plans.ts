// Plans: what one prompt-to-plan request costs through the plan service (template, model call, parser, validation,
// the record written to the memory intelligence store), per planner:
// - rule-based: the default, no model;
// - openai-compatible: the OpenAI adapter against a local chat-completions server that answers a valid plan at once,
//   so the figure is the protocol and chain overhead (HTTP, JSON, parsing, validation), not a model's inference;
// - llama-cpp: stories260K (a 260K-parameter test model) on one CPU thread with the schema grammar, when the file is
//   present; one model call per request (no repairs), since its answers never validate: this measures the local
//   inference path on the full template, not plan quality.
// Latency is wall time of `createPlan` as the caller sees it. Run alone: `node --import tsx bench/plans.ts`
// (BENCH_QUICK=1 for fewer requests).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { MemoryIntelligenceStore } from '../src/adapters/memory/memory-intelligence-store.js';
import { createLlamaCppLlm } from '../src/adapters/llama-cpp/llama-cpp-llm.js';
import { createOpenAiLlm } from '../src/adapters/openai/openai-llm.js';
import type { Llm } from '../src/core/ports/llm.js';
import { createPlanService } from '../src/intelligence/plan/plan-service.js';
import { startChatCompletionsServer } from '../test/helpers/chat-completions-server.js';
import { validPlan } from '../test/helpers/scripted-llm.js';
import { repoRoot } from '../test/helpers/server-process.js';
import { summarise } from './load.js';

export interface PlanBenchOptions {
  /** Requests per planner (rule-based and openai-compatible; default 500). */
  requests?: number;
  /** Requests to the local model (default 5). */
  llamaRequests?: number;
  /** The GGUF file (default ../shared/models/stories260K.gguf; skipped when absent). */
  modelPath?: string;
}

export interface PlanLatency {
  planner: string;
  /** What the figure measures. */
  note: string;
  /** How the requests ended, by status. */
  statuses: Record<string, number>;
  /** Milliseconds per request. */
  latencyMs: ReturnType<typeof summarise>;
}

const prompts = [
  'LoRA of my dog Fluffy in watercolor style, 25 photos',
  'dreambooth of my cat on SDXL at 1024px',
  'full fine-tune of stable diffusion 2.1 on product shots in a minimalist style, 800 images',
  'something nice',
];

async function measure(
  planner: string,
  note: string,
  llm: Llm | null,
  requests: number,
  maxRepairs?: number,
): Promise<PlanLatency> {
  const plans = createPlanService({ store: new MemoryIntelligenceStore(), llm, maxRepairs });
  // Warm up: the first request pays module and JIT costs (and the local model's first evaluation).
  await plans.createPlan({ prompt: prompts[0]! });
  const samples: number[] = [];
  const statuses: Record<string, number> = {};
  for (let i = 0; i < requests; i++) {
    const started = performance.now();
    const { record } = await plans.createPlan({ prompt: prompts[i % prompts.length]! });
    samples.push(performance.now() - started);
    statuses[record.status] = (statuses[record.status] ?? 0) + 1;
  }
  return { planner, note, statuses, latencyMs: summarise(samples) };
}

/** Plan latency p50/p99 per planner; the llama-cpp entry is `skipped` when the model file is absent. */
export async function benchPlans(
  options: PlanBenchOptions = {},
): Promise<{ planners: PlanLatency[]; skipped: { planner: string; reason: string }[] }> {
  const requests = options.requests ?? 500;
  const planners: PlanLatency[] = [];
  const skipped: { planner: string; reason: string }[] = [];

  planners.push(await measure('rule-based', 'keyword extraction, no model', null, requests));

  const server = await startChatCompletionsServer([{ kind: 'answer', content: JSON.stringify(validPlan) }]);
  const openai = createOpenAiLlm({ url: server.url, model: 'bench' });
  try {
    planners.push(
      await measure(
        'openai-compatible',
        'protocol overhead: a local chat-completions server that answers a valid plan at once (no inference)',
        openai,
        requests,
      ),
    );
  } finally {
    await openai.close();
    await server.close();
  }

  const modelPath = options.modelPath ?? resolve(repoRoot, '../shared/models/stories260K.gguf');
  if (!existsSync(modelPath)) {
    skipped.push({ planner: 'llama-cpp', reason: `no model at ${modelPath}` });
  } else {
    const llama = await createLlamaCppLlm({ modelPath, threads: 1 });
    try {
      planners.push(
        await measure(
          'llama-cpp',
          'stories260K on 1 CPU thread, schema grammar, full template, one model call per request (no repairs)',
          llama,
          options.llamaRequests ?? 5,
          0,
        ),
      );
    } finally {
      await llama.close();
    }
  }
  return { planners, skipped };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = process.env.BENCH_QUICK === '1';
  const result = await benchPlans(quick ? { requests: 50, llamaRequests: 2 } : {});
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
