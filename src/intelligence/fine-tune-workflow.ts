import type { WorkflowSpec } from '../core/workflow-spec.js';

/**
 * The `fine-tune` workflow: plan → curate → feedback → train → evaluate. The platform deploys it at start when no
 * workflow of that name exists (a user's own versions are left alone); `POST /v1/intelligence/runs` launches it.
 * Every step but `train` is a built-in task (`savassan.*`); `train` runs the function named by the `trainer` input.
 */
export const fineTuneSpec: WorkflowSpec = {
  description:
    "Prompt to model: plan the fine-tune, curate the images with the user's feedback, train a probe, evaluate it",
  inputs: {
    prompt: {
      type: 'string',
      description: "What to fine-tune, in the user's words",
    },
    user_id: {
      type: 'string',
      default: 'anonymous',
    },
    raw_data_uri: {
      type: 'string',
      default: '',
      description: 's3://BUCKET/PREFIX of the images (or dataset_id)',
    },
    dataset_id: {
      type: 'string',
      default: '',
      description: 'An uploaded dataset (or raw_data_uri)',
    },
    project_id: {
      type: 'string',
      description: "The curation job's project",
    },
    trainer: {
      type: 'string',
      default: 'fine-tune-trainer',
      description: 'The training function',
    },
    run_id: {
      type: 'string',
      description: "The run: the plan's request id and the model's folder",
    },
    plan_id: {
      type: 'string',
      default: '',
      description: 'A stored SUCCESS plan to use instead of planning from the prompt (e.g. one the user edited)',
    },
  },
  nodes: {
    plan: {
      function: 'savassan.plan',
      input: {
        prompt: '$.inputs.prompt',
        userId: '$.inputs.user_id',
        runId: '$.inputs.run_id',
        planId: '$.inputs.plan_id',
      },
      timeoutSeconds: 600,
      retries: 2,
      retryDelaySeconds: 5,
    },
    curate: {
      function: 'savassan.curate',
      input: {
        planId: '$.nodes.plan.output.planId',
        projectId: '$.inputs.project_id',
        rawDataUri: '$.inputs.raw_data_uri',
        datasetId: '$.inputs.dataset_id',
      },
      timeoutSeconds: 21600,
    },
    feedback: {
      function: 'savassan.await-feedback',
      input: {
        curationId: '$.nodes.curate.output.curationId',
      },
      timeoutSeconds: 86400,
    },
    train: {
      function: 'savassan.train',
      input: {
        trainer: '$.inputs.trainer',
        plan: '$.nodes.plan.output.plan',
        curatedDatasetUri: '$.nodes.feedback.output.curatedDatasetUri',
        trainingSet: '$.nodes.feedback.output.trainingSet',
      },
      timeoutSeconds: 3600,
    },
    evaluate: {
      function: 'savassan.evaluate',
      input: {
        runId: '$.inputs.run_id',
        planId: '$.nodes.plan.output.planId',
        plan: '$.nodes.plan.output.plan',
        curatedDatasetUri: '$.nodes.feedback.output.curatedDatasetUri',
        trainingSet: '$.nodes.feedback.output.trainingSet',
        training: '$.nodes.train.output',
      },
      timeoutSeconds: 600,
    },
  },
  output: {
    planId: '$.nodes.plan.output.planId',
    curationId: '$.nodes.curate.output.curationId',
    curatedDatasetUri: '$.nodes.feedback.output.curatedDatasetUri',
    trainingExamples: '$.nodes.evaluate.output.examples',
    trainingSetTruncated: '$.nodes.feedback.output.truncated',
    accuracy: '$.nodes.evaluate.output.accuracy',
    heldOutAccuracy: '$.nodes.evaluate.output.heldOutAccuracy',
    modelUri: '$.nodes.evaluate.output.modelUri',
    reportUri: '$.nodes.evaluate.output.reportUri',
  },
};
