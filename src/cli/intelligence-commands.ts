// `savassan dataset`, `savassan curation` and `savassan finetune`: image uploads, curation jobs and prompt-to-model
// runs, through `/v1/datasets`, `/v1/curations` and `/v1/intelligence/runs`.
import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { InvalidArgumentError } from 'commander';
import type { Command } from 'commander';
import { ApiError, SavassanClient } from '../client/client.js';
import type { CurationAnswer, DatasetImageAnswer, RunAnswer, RunStatus } from '../client/client.js';
import type { CurationStatus } from '../core/curation.js';
import { PlatformError } from '../core/errors.js';
import { info, integer, out, printJson, table } from './output.js';

const client = () => new SavassanClient();

/** One file's failure as `{code, message}`: the API's error, or the file system's (the user's own file). */
function failureOf(err: unknown): { code: string; message: string } {
  if (err instanceof ApiError) return { code: err.code, message: err.rawMessage };
  if (err instanceof PlatformError) return { code: err.code, message: err.rawMessage };
  return { code: 'BAD_REQUEST', message: err instanceof Error ? err.message : String(err) };
}

/** Files a directory argument of `dataset upload` takes: what the curator's decoder reads. */
const imageExtensions = new Set(['.png', '.jpg', '.jpeg', '.webp', '.gif', '.avif', '.tif', '.tiff', '.heic']);

function isImageName(name: string): boolean {
  const dot = name.lastIndexOf('.');
  return !name.startsWith('.') && dot > 0 && imageExtensions.has(name.slice(dot).toLowerCase());
}

/** A comma-separated list of ids, repeatable (`--accept a,b --accept c`). */
function idList(value: string, previous: string[] = []): string[] {
  const ids = value
    .split(',')
    .map((id) => id.trim())
    .filter((id) => id !== '');
  if (ids.length === 0) throw new InvalidArgumentError(`expected image ids separated by commas, got "${value}"`);
  return [...previous, ...ids];
}

/** Polls with a backoff (100 ms doubling to 1 s) until `done` holds: the last answer. */
async function pollUntil<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  let delay = 100;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 1000);
  }
}

/** Where `--wait` stops following a curation: it wants verdicts, or it ended. */
const curationStops: ReadonlySet<CurationStatus> = new Set(['AWAITING_FEEDBACK', 'COMPLETED', 'FAILED']);
/** Where `--wait` stops following a run. */
const runStops: ReadonlySet<RunStatus> = new Set(['AWAITING_FEEDBACK', 'SUCCEEDED', 'FAILED', 'ABORTED']);

// ---------------------------------------------------------------------------------------------------------------
// dataset

/** The files of `dataset upload`'s arguments: a file as given, a directory's image files by name. */
async function uploadList(
  paths: string[],
): Promise<{ files: string[]; problems: { path: string; message: string }[] }> {
  const files: string[] = [];
  const problems: { path: string; message: string }[] = [];
  for (const path of paths) {
    let info;
    try {
      info = await stat(path);
    } catch (err) {
      problems.push({ path, message: failureOf(err).message });
      continue;
    }
    if (!info.isDirectory()) {
      files.push(path);
      continue;
    }
    const entries = await readdir(path, { withFileTypes: true });
    const images = entries
      .filter((entry) => entry.isFile() && isImageName(entry.name))
      .map((entry) => entry.name)
      .sort();
    if (images.length === 0) problems.push({ path, message: 'the directory holds no image files' });
    files.push(...images.map((name) => join(path, name)));
  }
  return { files, problems };
}

interface UploadResult {
  file: string;
  name: string;
  image?: DatasetImageAnswer;
  replaced?: boolean;
  error?: { code: string; message: string };
}

function addDatasetCommands(program: Command): void {
  const dataset = program
    .command('dataset')
    .description('upload images into a dataset (the source of a curation or a fine-tune run) and list them');

  dataset
    .command('upload')
    .description('upload image files into a dataset (created by its first image); the same name again replaces it')
    .argument('<datasetId>', '1-63 lowercase letters, digits and "-", starting with a letter or digit')
    .argument('<files...>', 'image files, or directories whose image files are uploaded (not their subdirectories)')
    .option('--json', 'print [{file, name, image} | {file, name, error}] for every file')
    .addHelpText(
      'after',
      '\nEach file is streamed to POST /v1/datasets/ID/images?name=BASENAME (at most 25 MiB). A directory gives its\n' +
        `files named ${[...imageExtensions].join(' ')}. One line per file; the exit status is 1 if any failed.\n` +
        'Files are not decoded on upload: a curation job reports those it cannot read.\n' +
        '\nExamples:\n' +
        '  savassan dataset upload fluffy ./photos\n' +
        '  savassan dataset upload fluffy fluffy-01.jpg fluffy-02.png',
    )
    .action(async (datasetId: string, paths: string[], opts: { json?: boolean }) => {
      const c = client();
      const { files, problems } = await uploadList(paths);
      const results: UploadResult[] = problems.map(({ path, message }) => ({
        file: path,
        name: basename(path),
        error: { code: 'BAD_REQUEST', message },
      }));
      for (const problem of results)
        if (opts.json !== true) info(`failed   ${problem.file}: ${problem.error?.message}`);
      for (const file of files) {
        const name = basename(file);
        try {
          const { created, image } = await c.uploadDatasetImage(datasetId, name, { path: file });
          results.push({ file, name, image, replaced: !created });
          if (opts.json !== true) {
            out(`${created ? 'uploaded' : 'replaced'} ${name} ${image.imageId} ${image.bytes} bytes ${image.uri}`);
          }
        } catch (err) {
          const { code, message } = failureOf(err);
          // Nothing answers once the server cannot be reached: say so once rather than for every file.
          if (code === 'UNAVAILABLE' && err instanceof PlatformError) throw err;
          results.push({ file, name, error: { code, message } });
          if (opts.json !== true) info(`failed   ${file}: [${code}] ${message}`);
        }
      }
      const failed = results.filter((r) => r.error !== undefined).length;
      if (opts.json === true) printJson(results);
      else info(`${results.length - failed} of ${results.length} file(s) uploaded to dataset ${datasetId}`);
      if (failed > 0) process.exitCode = 1;
    });

  dataset
    .command('ls')
    .description("list a dataset's images")
    .argument('<datasetId>', 'the dataset')
    .option('--json', 'print {images} as GET /v1/datasets/ID/images answers it')
    .addHelpText('after', '\nExamples:\n  savassan dataset ls fluffy')
    .action(async (datasetId: string, opts: { json?: boolean }) => {
      const answer = await client().listDatasetImages(datasetId);
      if (opts.json === true) {
        printJson(answer);
        return;
      }
      if (answer.images.length === 0) {
        info(`dataset ${datasetId} has no images: upload some with "savassan dataset upload ${datasetId} FILES"`);
        return;
      }
      table([
        ['IMAGE', 'NAME', 'BYTES', 'TYPE', 'UPLOADED'],
        ...answer.images.map((image) => [
          image.imageId,
          image.name,
          String(image.bytes),
          image.contentType,
          image.createdAt,
        ]),
      ]);
    });
}

// ---------------------------------------------------------------------------------------------------------------
// curation

function printCuration(curation: CurationAnswer): void {
  const { progress } = curation;
  out(`curation ${curation.id} ${curation.status} (project ${curation.projectId}, embedder ${curation.embedder})`);
  out(
    `progress  ${progress.embedded}/${progress.total} embedded, ${progress.failed} failed, ` +
      `${progress.duplicates} duplicate(s)`,
  );
  if (curation.failure !== null) out(`failure   ${curation.failure}`);
  if (curation.curatedDatasetUri !== null) {
    out(`curated   ${curation.curatedDatasetUri} (dataset ${curation.curatedDatasetId ?? '?'})`);
  }
  if (curation.feedback.length > 0) {
    const accepted = curation.feedback.filter((v) => v.accepted).length;
    out(`feedback  ${accepted} accepted, ${curation.feedback.length - accepted} rejected`);
  }
  if (curation.imagesForFeedback.length > 0) {
    const verdicts = new Map(curation.feedback.map((v) => [v.imageId, v.accepted]));
    out('');
    out(`images for feedback (${curation.imagesForFeedback.length}):`);
    table([
      ['IMAGE', 'REASON', 'CLUSTER', 'VERDICT', 'URI'],
      ...curation.imagesForFeedback.map((image) => {
        const verdict = verdicts.get(image.imageId);
        return [
          image.imageId,
          image.reason,
          String(image.cluster),
          verdict === undefined ? '-' : verdict ? 'accepted' : 'rejected',
          image.uri,
        ];
      }),
    ]);
  }
  if (curation.errors.length > 0) {
    out('');
    out(`files that could not be curated (${curation.errors.length}):`);
    for (const error of curation.errors) out(`  ${error.file}: ${error.message}`);
  }
  if (curation.status === 'AWAITING_FEEDBACK') {
    info(
      `next: savassan curation feedback ${curation.id} --accept IMG,IMG --reject IMG ` +
        `(the images at GET /v1/curations/${curation.id}/images/IMG)`,
    );
  }
}

function curationExit(curation: CurationAnswer): void {
  if (curation.status === 'FAILED') process.exitCode = 1;
}

function addCurationCommands(program: Command): void {
  const curation = program
    .command('curation')
    .description('curate a dataset: embed its images, review a sample, write the curated dataset');

  curation
    .command('start')
    .description('start a curation job over an uploaded dataset or an s3:// prefix of the platform bucket')
    .requiredOption('--project <id>', 'the project the job belongs to (1-128 of letters, digits, ".", "_", "-")')
    .option('--dataset <id>', 'an uploaded dataset (savassan dataset upload)')
    .option('--raw-data-uri <uri>', "s3://BUCKET/PREFIX in the platform's own bucket")
    .option('--wait', 'follow the job until it awaits feedback or ends, then print it')
    .option('--json', 'print {id, status} (with --wait: the curation as GET /v1/curations/ID answers it)')
    .addHelpText(
      'after',
      '\nGive exactly one of --dataset and --raw-data-uri. The exit status is 1 when the job FAILED (with --wait).\n' +
        '\nExamples:\n' +
        '  savassan curation start --project cats --dataset cat-photos --wait\n' +
        '  savassan curation start --project cats --raw-data-uri s3://savassan/imports/cats/',
    )
    .action(
      async (opts: { project: string; dataset?: string; rawDataUri?: string; wait?: boolean; json?: boolean }) => {
        if ((opts.dataset === undefined) === (opts.rawDataUri === undefined)) {
          throw new PlatformError(
            'BAD_REQUEST',
            'give exactly one of --dataset ID and --raw-data-uri s3://BUCKET/PREFIX',
          );
        }
        const c = client();
        const started = await c.startCuration({
          projectId: opts.project,
          ...(opts.dataset === undefined ? {} : { datasetId: opts.dataset }),
          ...(opts.rawDataUri === undefined ? {} : { rawDataUri: opts.rawDataUri }),
        });
        if (opts.wait !== true) {
          if (opts.json === true) printJson(started);
          else out(`curation ${started.id} ${started.status}`);
          return;
        }
        if (opts.json !== true) info(`started curation ${started.id}; waiting for it to await feedback or end`);
        const answer = await pollUntil(
          () => c.getCuration(started.id),
          (view) => curationStops.has(view.status),
        );
        if (opts.json === true) printJson(answer);
        else printCuration(answer);
        curationExit(answer);
      },
    );

  curation
    .command('status')
    .description('show a curation job: progress, the images for feedback, errors, the curated dataset')
    .argument('<id>', 'the curation id (cur-…)')
    .option('--wait', 'wait until the job awaits feedback or ends')
    .option('--json', 'print the curation as GET /v1/curations/ID answers it')
    .addHelpText(
      'after',
      '\nThe exit status is 1 when the job FAILED.\n' +
        '\nExamples:\n  savassan curation status cur-abcdefghijklmnopqrstuvwxyz --wait',
    )
    .action(async (id: string, opts: { wait?: boolean; json?: boolean }) => {
      const c = client();
      const answer =
        opts.wait === true
          ? await pollUntil(
              () => c.getCuration(id),
              (view) => curationStops.has(view.status),
            )
          : await c.getCuration(id);
      if (opts.json === true) printJson(answer);
      else printCuration(answer);
      curationExit(answer);
    });

  curation
    .command('feedback')
    .description('accept or reject images of a job awaiting feedback; by default this completes the job')
    .argument('<id>', 'the curation id (cur-…)')
    .option('--accept <ids>', 'image ids to keep, separated by commas (repeatable)', idList)
    .option('--reject <ids>', 'image ids to leave out, separated by commas (repeatable)', idList)
    .option('--no-complete', 'only record the verdicts; the job keeps awaiting feedback')
    .option('--json', 'print the curation as the feedback answer gives it')
    .addHelpText(
      'after',
      '\nCompleting refines the verdicts (accepted images pull their near neighbours in, rejected ones push theirs\n' +
        'out), writes the curated dataset and ends the job COMPLETED. Only a job AWAITING_FEEDBACK takes verdicts.\n' +
        '\nExamples:\n' +
        '  savassan curation feedback cur-abcdefghijklmnopqrstuvwxyz --accept img-aaa,img-bbb --reject img-ccc\n' +
        '  savassan curation feedback cur-abcdefghijklmnopqrstuvwxyz --reject img-ddd --no-complete',
    )
    .action(async (id: string, opts: { accept?: string[]; reject?: string[]; complete: boolean; json?: boolean }) => {
      const accept = opts.accept ?? [];
      const reject = opts.reject ?? [];
      const both = accept.filter((imageId) => reject.includes(imageId));
      if (both.length > 0) {
        throw new PlatformError('BAD_REQUEST', `accepted and rejected at once: ${[...new Set(both)].join(', ')}`);
      }
      if (accept.length + reject.length === 0 && !opts.complete) {
        throw new PlatformError('BAD_REQUEST', 'nothing to record: give --accept or --reject image ids');
      }
      const feedback = [
        ...accept.map((imageId) => ({ imageId, accepted: true })),
        ...reject.map((imageId) => ({ imageId, accepted: false })),
      ];
      const answer = await client().submitCurationFeedback(id, feedback, opts.complete);
      if (opts.json === true) printJson(answer);
      else printCuration(answer);
      curationExit(answer);
    });
}

// ---------------------------------------------------------------------------------------------------------------
// finetune

function printRun(run: RunAnswer): void {
  out(`run ${run.id} ${run.status}`);
  out(`prompt    ${run.prompt}`);
  out(`user      ${run.userId}`);
  out(`execution ${run.execution.project}/${run.execution.domain}/${run.execution.name}`);
  if (run.planId !== null) {
    const plan = run.plan === null ? '' : ` (${run.plan.tuning_type} of ${run.plan.base_model})`;
    out(`plan      ${run.planId}${plan}`);
  }
  if (run.curationId !== null) out(`curation  ${run.curationId}`);
  if (run.curatedDatasetUri !== null) out(`curated   ${run.curatedDatasetUri}`);
  if (run.output !== null && run.output !== undefined) out(`output    ${JSON.stringify(run.output)}`);
  if (run.error !== null) out(`error     [${run.error.code}] ${run.error.message}`);
  if (run.status === 'AWAITING_FEEDBACK' && run.curationId !== null) {
    info(`next: savassan curation status ${run.curationId}   (the images to review, with their ids)`);
    info(`then: savassan curation feedback ${run.curationId} --accept IMG,IMG --reject IMG`);
  }
}

function runExit(run: RunAnswer): void {
  if (run.status === 'FAILED' || run.status === 'ABORTED') process.exitCode = 1;
}

function addFinetuneCommands(program: Command): void {
  const finetune = program
    .command('finetune')
    .description('prompt-to-model runs: plan → curate → feedback → train → evaluate (the fine-tune workflow)');

  finetune
    .command('run')
    .description('start a fine-tune run from a prompt and a dataset')
    .argument('<prompt>', 'what to fine-tune, in words')
    .option('--dataset <id>', 'an uploaded dataset (savassan dataset upload)')
    .option('--raw-data-uri <uri>', "s3://BUCKET/PREFIX in the platform's own bucket")
    .option('--trainer <name>', 'the training function (default fine-tune-trainer)')
    .option('--plan-id <id>', 'a stored SUCCESS plan to use instead of planning from the prompt (e.g. an edited one)')
    .option('--user <id>', 'who asks (default anonymous)')
    .option('--wait', 'follow the run until it awaits feedback (then print what to run) or ends')
    .option('--json', 'print the run as POST /v1/intelligence/runs answers it (with --wait: its last view)')
    .addHelpText(
      'after',
      '\nGive exactly one of --dataset and --raw-data-uri. A run stops at AWAITING_FEEDBACK until its curation gets\n' +
        'verdicts (savassan curation feedback CURATION …); then it trains and evaluates. The exit status is 1 when the\n' +
        'run FAILED or was ABORTED.\n' +
        '\nExamples:\n' +
        '  savassan finetune run "LoRA of my dog Fluffy in watercolor style" --dataset fluffy --wait\n' +
        '  savassan finetune run "dreambooth of my cat" --raw-data-uri s3://savassan/imports/cat/ --trainer my-trainer\n' +
        '  savassan finetune run "LoRA of my dog Fluffy" --dataset fluffy --plan-id plan-abcdefghijklmnopqrstuvwxyz',
    )
    .action(
      async (
        prompt: string,
        opts: {
          dataset?: string;
          rawDataUri?: string;
          trainer?: string;
          planId?: string;
          user?: string;
          wait?: boolean;
          json?: boolean;
        },
      ) => {
        if ((opts.dataset === undefined) === (opts.rawDataUri === undefined)) {
          throw new PlatformError(
            'BAD_REQUEST',
            'give exactly one of --dataset ID and --raw-data-uri s3://BUCKET/PREFIX',
          );
        }
        const c = client();
        if (opts.dataset !== undefined) {
          // The run would only fail at its curate step: say so now.
          const { images } = await c.listDatasetImages(opts.dataset);
          if (images.length === 0) {
            throw new PlatformError(
              'BAD_REQUEST',
              `dataset ${opts.dataset} has no images: upload some with "savassan dataset upload ${opts.dataset} FILES"`,
            );
          }
        }
        const started = await c.startRun({
          prompt,
          ...(opts.dataset === undefined ? {} : { datasetId: opts.dataset }),
          ...(opts.rawDataUri === undefined ? {} : { rawDataUri: opts.rawDataUri }),
          ...(opts.trainer === undefined ? {} : { trainer: opts.trainer }),
          ...(opts.planId === undefined ? {} : { planId: opts.planId }),
          ...(opts.user === undefined ? {} : { userId: opts.user }),
        });
        if (opts.wait !== true) {
          if (opts.json === true) printJson(started);
          else printRun(started);
          return;
        }
        if (opts.json !== true) info(`started run ${started.id}; waiting for it to await feedback or end`);
        const run = await pollUntil(
          () => c.getRun(started.id),
          (view) => runStops.has(view.status),
        );
        if (opts.json === true) printJson(run);
        else printRun(run);
        runExit(run);
      },
    );

  finetune
    .command('status')
    .description('show a run: status, plan, curation, curated dataset, output or error')
    .argument('<runId>', 'the run id (run-…)')
    .option('--wait', 'wait until the run awaits feedback or ends')
    .option('--json', 'print the run as GET /v1/intelligence/runs/ID answers it')
    .addHelpText(
      'after',
      '\nThe exit status is 1 when the run FAILED or was ABORTED.\n' +
        '\nExamples:\n  savassan finetune status run-abcdefghijklmnopqrstuvwxyz --wait',
    )
    .action(async (id: string, opts: { wait?: boolean; json?: boolean }) => {
      const c = client();
      const run =
        opts.wait === true
          ? await pollUntil(
              () => c.getRun(id),
              (view) => runStops.has(view.status),
            )
          : await c.getRun(id);
      if (opts.json === true) printJson(run);
      else printRun(run);
      runExit(run);
    });

  finetune
    .command('ls')
    .description('list runs, newest first')
    .option('--limit <n>', 'at most this many (default 50, at most 1000)', integer)
    .option('--json', 'print {runs} as GET /v1/intelligence/runs answers it')
    .addHelpText('after', '\nExamples:\n  savassan finetune ls --limit 10')
    .action(async (opts: { limit?: number; json?: boolean }) => {
      const answer = await client().listRuns(opts.limit === undefined ? {} : { limit: opts.limit });
      if (opts.json === true) {
        printJson(answer);
        return;
      }
      if (answer.runs.length === 0) {
        info('no runs yet: start one with savassan finetune run "PROMPT" --dataset ID');
        return;
      }
      const short = (text: string) => (text.length > 50 ? `${text.slice(0, 49)}…` : text);
      table([
        ['RUN', 'STATUS', 'CREATED', 'CURATION', 'PROMPT'],
        ...answer.runs.map((run) => [run.id, run.status, run.createdAt, run.curationId ?? '-', short(run.prompt)]),
      ]);
    });
}

export function addIntelligenceCommands(program: Command): void {
  addDatasetCommands(program);
  addCurationCommands(program);
  addFinetuneCommands(program);
}
